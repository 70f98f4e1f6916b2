"""Modal dialogs, one per module: confirm, prompt, results, help."""
