"""Deletion requests as a product: a ledger of requests, their unlearning, a certificate per request.

People who must honour deletion requests need more than an unlearned model: a record of what was
asked and when, which model versions were derived from which, what was done for each request, and
evidence, per request, that it was honoured. This layer sits above `methods`, `audit` and `bank`:

- `Ledger` (ledger.py): an append-only, hash-chained SQLite table of the base model, the requests,
  every unlearning step (input model hash → output hash) and every certificate issued;
- `apply_requests` (apply.py): honour the requests a model has not honoured yet, one at a time
  (AMUN's successive setting) or all at once, or exactly with SISA;
- `verify_request` (verify.py, its statistics in verdict.py) and `issue_certificate`
  (certificate.py): test one request's samples against models retrained from several seeds
  without every honoured request, and write the verdict (consistent, not consistent or
  inconclusive, at stated error rates) with the tolerances that decided it, as JSON and HTML.

    ledger = Ledger("requests.sqlite")
    init_ledger(ledger, "base.safetensors", "mnist1d")
    ledger.add_request([3, 14, 15], n_train=4000, reason="GDPR Art. 17", requester="alice")
    apply_requests(ledger, "base.safetensors", "amun", "m1.safetensors")
    certificate = verify_request(ledger, 1, "m1.safetensors")
"""

from unlearn.requests.apply import apply_requests, init_ledger  # noqa: F401
from unlearn.requests.certificate import issue_certificate, render_html  # noqa: F401
from unlearn.requests.ledger import (  # noqa: F401
    Entry,
    Ledger,
    Request,
    content_hash,
    file_content_hash,
    file_identity,
    model_identity,
)
from unlearn.requests.verify import (  # noqa: F401
    CONSISTENT,
    DEFAULT_THRESHOLDS,
    INCONCLUSIVE,
    NOT_CONSISTENT,
    assess,
    verify_request,
)
