"""Unlearning for causal language models: the LM half of `unlearn`, with the same layers.

A sibling of the classifier packages, with the same shape: a corpus and its splits (data), any
`transformers` causal LM from a local directory (models), methods that are one loss each over a
forget batch and a retain batch (methods), and audits as TOFU and MUSE define them (audit). What
every layer needs, scoring a completion given a prompt, lives once in `unlearn.lm.scoring`.
"""
