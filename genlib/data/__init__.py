"""Data sets for the course, generated or shipped by an installed package; nothing is downloaded.

One module per kind of data (e.g. ``text``, ``images``, ``toy2d``). Where a data set is drawn from a
known distribution, the module also gives that distribution, so the book can show exact answers.
"""
