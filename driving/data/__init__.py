"""Recorded data: the episode dataset format (writer, reader, salvage) and training windows."""
