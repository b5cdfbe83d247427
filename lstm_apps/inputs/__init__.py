"""Readers and tf.data building blocks shared by the tasks (audio now; text and video with their tasks)."""
