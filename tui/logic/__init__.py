"""Pure logic behind the explorer's screens: no Textual, no network, unit-tested.

``tags`` (tag rows and their orderings), ``retention`` ("keep the newest N", bulk delete
plans), ``repotree`` (repositories grouped by namespace, filtering), ``fmt`` (human units),
``escape`` (registry text made safe for a terminal).
"""
