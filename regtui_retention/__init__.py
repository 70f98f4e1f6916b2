"""Retention, shared: the policy language (:mod:`~regtui_retention.policy`), the planner
(:mod:`~regtui_retention.plan`), the state of a repository from the bundled registry's
``_regtui/tags`` document (:mod:`~regtui_retention.document`) and the words of outcomes
(:mod:`~regtui_retention.outcomes`).

Plain Python (the standard library, PyYAML and RE2): it imports neither ``tui`` nor
``embedded_registry`` (an import-linter contract), so ``regtui prune``, the app's Retention
screen and the bundled registry's scheduled retention (``regtui.retention``) plan with the same
code.
"""
