"""Task pipelines: one folder per task with only that task's own pieces and its YAML presets."""
