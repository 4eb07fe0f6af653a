"""The command line for people: `upload`, `jobs ...`, `run`, `events send` and
`track send`, talking to a running server.

A client, not the server: plain synchronous grpc (`connection`), with the
output a person or a script reads (`output`), and one module per command
family on top.
"""
