"""chatrooms domain core: rooms, roles, the stage, the speaker queue and moderation.

Pure logic with no I/O: commands go in as method calls on :class:`chatrooms.room.Room`,
events come out as frozen dataclasses from :mod:`chatrooms.events`.
"""
