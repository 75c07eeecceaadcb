"""The project's root: the one base error every project error derives from.

``liquid_drive`` sits at the bottom of the import graph and imports nothing of the project, so
``sim``, ``perception`` and ``driving`` can all derive their errors from it.
"""

from liquid_drive.errors import LiquidDriveError

__all__ = ["LiquidDriveError"]
