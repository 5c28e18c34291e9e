"""The offline teacher and judge: an OpenAI-compatible server whose tasks can be checked exactly.

`belle_teacher.tasks` (standard library only) is the task family; `belle_teacher.server` the HTTP side.
"""
