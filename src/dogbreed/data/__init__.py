"""Getting photos from a folder, archive or URL into a checked, split dataset with a manifest.

Pure logic (labels, layout, splitting, planning, manifest) lives apart from I/O (download,
archives, image checks, stores), so the rules can be tested without touching disk or network.
"""
