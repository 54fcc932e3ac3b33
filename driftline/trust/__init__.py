"""Who may say what: the trainer's signing keys and the signed pointer moves readers check.

A pure core shared by the trainer (signs), the subscriber library and the stream worker
(verify), so neither process package imports the other's.
"""
