"""The language-model task's own command-line flags (TF-free: `--help` imports no TensorFlow)."""

OPTIONS = {"predict": {
    "--score": dict(metavar="FILE", help="print the perplexity of a text file (one sentence per line)"),
    "--max-tokens": dict(type=int, help="words to generate after each prompt (default: generate.max_tokens)"),
    "--temperature": dict(type=float, help="sampling temperature, 0 = greedy (default: generate.temperature)"),
    "--top-k": dict(type=int, help="sample from the k most likely words (default: generate.top_k)"),
    "--top-p": dict(type=float, help="nucleus sampling probability mass (default: generate.top_p)"),
    "--seed": dict(type=int, help="sampling seed (default: generate.seed)"),
}}
VERBS = {}
# fixed in an export (generate.top_k, top_p and seed are baked into its sampling loop)
RUN_DIR_ONLY = ("top_k", "top_p", "seed")
