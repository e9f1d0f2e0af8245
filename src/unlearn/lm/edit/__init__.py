"""Editing what a language model believes: replace one fact by a counterfactual without retraining.

The definition note's "general interesting problem" beside forgetting: not removing a fact but
rewriting it. An `EditRequest` names a fact (entity, relation) and its new value; two editors
return an edited copy of the model, the input untouched:

- `constrained` — fine-tuning one MLP's output projection on the rewrite prompt with every
  weight kept in an L∞ box around the original (Zhu et al. 2020; ROME's "FT+L" baseline);
- `rome` — Rank-One Model Editing (Meng et al. 2022): one rank-one update of one MLP's output
  projection that maps the subject's key to a value optimised to make the new answer likely.

Both are audited by CounterFact's metrics (`unlearn.lm.audit.counterfact`): efficacy,
paraphrase generalisation, neighbourhood specificity.
"""

from unlearn.lm.edit.request import EditRequest, edit_requests, mlp_projection  # noqa: F401
