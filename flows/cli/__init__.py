"""The command line: `python flows/ct.py COMMAND` (main.py parses, commands.py runs), its console
output, its pre-flight checks, the local Prefect server it starts and reuses, and the warm process
commands fork from. It imports the flows; no flow imports it (flows/ct.py's `__main__` is the
one edge back).
"""
