"""SG's auditor: a membership-inference classifier whose optimum is differentiable in its inputs.

In SG (Di et al., ICLR 2025, "Adversarial Machine Unlearning", Sec. 3-4) the auditor is the
follower of a Stackelberg game: given the unlearned model's outputs S on the forget set
(members, target 1) and on held-out non-members (target 0), it answers with its best response

    θ_a*(S) = argmin_θ L(θ; S_train) = mean_i ℓ(t_i, θ·[s_i, 1]) + (λ/2)‖θ‖²,

and its utility U_a is minus its loss on the held-out part S_test. The leader needs dU_a/dS
*through* θ_a*, which the implicit function theorem gives from the optimality condition
∇_θ L(θ_a*, S) = 0:

    dθ_a*/dS = −H⁻¹ ∂²L/∂θ∂S,   H = ∇²_θ L(θ_a*, S).

The auditor has tens of parameters (logits ⊕ loss), so here it is solved by Newton's method to
a tolerance and H is formed and solved exactly, in float64 torch, with no external solver
(docs/methods.md, "sg"). Two smooth losses make H well defined: logistic regression and the
squared-hinge SVM. The paper's auditor, a linear hinge-loss SVM solved through cvxpylayers
(Agrawal et al., NeurIPS 2019), is available when the optional `svm` extra is installed. The
check of the torch version poses its own squared-hinge problem to cvxpylayers: same optimum,
same gradient (cosine 1.0000 on a digits auditor). The hinge SVM is a different loss and its
gradient points elsewhere (cosine 0.35 with the squared hinge, 0.06 with the logistic auditor on
the same problem; `benchmarks/bench_sg.py gradients`).

Deviations from the paper, and why:
- An L2 ridge λ on every auditor parameter (bias included). The public code fits an
  unregularised SVM; on separable member/non-member features its optimum is not unique and its
  gradient is ill-defined (docs/methods.md, "sg"). The ridge makes L strongly convex.
- Features are standardised (one constant mean and deviation per feature over all audited
  rows; SG fixes them from the original model), so that λ means the same for logits and losses.
- With the smooth auditors the utility is minus the auditor's own held-out loss (logistic or
  squared hinge) rather than the hinge loss, so U_a is differentiable everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from unlearn.errors import UnlearnInputError

FEATURES = ("logits+loss", "loss")
# "svm" is the paper's hinge-loss linear SVM through cvxpylayers; the others are solved in torch.
AUDITORS = ("logistic", "sqhinge", "svm")


def auditor_features(logits: torch.Tensor, labels: torch.Tensor, kind: str = "logits+loss") -> torch.Tensor:
    """Per-sample auditor features: the logits concatenated with the cross-entropy loss, or the loss alone.

    Differentiable in `logits`; shape (N, C + 1) or (N, 1).
    """
    if kind not in FEATURES:
        raise UnlearnInputError(f"unknown auditor features {kind!r}; use one of {FEATURES}")
    loss = F.cross_entropy(logits, labels, reduction="none")[:, None]
    return loss if kind == "loss" else torch.cat([logits, loss], 1)


@dataclass(frozen=True)
class AuditorTask:
    """One auditor fit: rows of the stacked features [members; non-members], split into train and test.

    Rows below `n_members` are members (target 1), the others non-members (target 0).
    `group` is the class of a per-class auditor, or -1 for one auditor over all classes.
    `train_weights` / `test_weights` weigh the rows in the auditor's loss and accuracy (each sums
    to 1); None means equal weights, for tasks balanced by subsampling.
    """

    group: int
    n_members: int
    train: torch.Tensor
    test: torch.Tensor
    train_weights: torch.Tensor | None = None
    test_weights: torch.Tensor | None = None

    def targets(self, rows: torch.Tensor) -> torch.Tensor:
        return (rows < self.n_members).double()


def _stratified_split(strata: np.ndarray, train_fraction: float, rng: np.random.Generator):
    """Positions split so that every stratum of >= 2 rows has rows on both sides."""
    train, test = [], []
    for stratum in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        k = int(np.clip(round(train_fraction * len(rows)), 1, max(1, len(rows) - 1)))
        train.append(rows[:k])
        test.append(rows[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _stratum_weights(strata: np.ndarray, mass: dict[int, float]) -> torch.Tensor:
    """Row weights giving every stratum its `mass`, shared equally among its rows."""
    counts = dict(zip(*np.unique(strata, return_counts=True)))
    return torch.as_tensor([mass[s] / counts[s] for s in strata], dtype=torch.float64)


def audit_tasks(member_labels, nonmember_labels, *, per_class: bool, n_splits: int = 3,
                train_fraction: float = 0.7, seed: int = 0) -> list[AuditorTask]:
    """Balanced, class-stratified auditor fits (SG: 70/30 splits, 3 of them, one auditor per class).

    `per_class=True` (random forgetting) gives one auditor per class; within its class the larger
    side is subsampled to the size of the smaller, so members and non-members are balanced.
    `per_class=False` (class forgetting) gives one auditor over the forgotten classes, whose
    non-members are the held-out samples of those classes. It uses *every* member and every
    non-member and balances them by weight instead: members and non-members of a class each carry
    half of that class's weight, and classes weigh as their share of the members. (Cutting, as the
    per-class auditors do, would drop most of D_F: a forgotten class has about as many training
    samples as the rest of the held-out split has classes times fewer.) Classes with fewer than
    two members or non-members cannot be split and are left out. A new `seed` redraws the
    subsample and the splits.
    """
    member_labels = np.asarray(member_labels)
    nonmember_labels = np.asarray(nonmember_labels)
    if not 0 < train_fraction < 1:
        raise UnlearnInputError(f"auditor train_fraction must lie in (0, 1), got {train_fraction}")
    if n_splits < 1:
        raise UnlearnInputError(f"auditor n_splits must be at least 1, got {n_splits}")
    rng = np.random.default_rng(seed)
    n_members = len(member_labels)
    classes = np.unique(member_labels)
    groups = [[c] for c in classes] if per_class else [list(classes)]
    tasks = []
    for group in groups:
        members, nonmembers = [], []
        for c in group:
            m = np.flatnonzero(member_labels == c)
            nm = np.flatnonzero(nonmember_labels == c)
            k = min(len(m), len(nm))
            if k >= 2:
                members.append(rng.choice(m, k, replace=False) if per_class else m)
                nonmembers.append(rng.choice(nm, k, replace=False) if per_class else nm)
        if not members:
            continue
        members, nonmembers = np.concatenate(members), np.concatenate(nonmembers)
        rows = np.concatenate([members, n_members + nonmembers])
        # Strata: (class, membership), so both the class mix and the balance survive the split.
        strata = np.concatenate([member_labels[members] * 2 + 1, nonmember_labels[nonmembers] * 2])
        share = {c: float(np.mean(member_labels[members] == c)) for c in np.unique(member_labels[members])}
        mass = {2 * c + side: share[c] / 2 for c in share for side in (0, 1)}
        for _ in range(n_splits):
            train, test = _stratified_split(strata, train_fraction, rng)
            weights = (None, None) if per_class else (_stratum_weights(strata[train], mass),
                                                      _stratum_weights(strata[test], mass))
            tasks.append(AuditorTask(int(group[0]) if per_class else -1, n_members,
                                     torch.as_tensor(rows[train]), torch.as_tensor(rows[test]), *weights))
    if not tasks:
        raise UnlearnInputError(
            "SG's auditor needs, in at least one class, 2 forget samples and 2 held-out non-members; "
            f"forget classes {classes.tolist()}, held-out classes {np.unique(nonmember_labels).tolist()}"
        )
    return tasks


def compact_tasks(tasks: list[AuditorTask]) -> tuple[list[AuditorTask], np.ndarray]:
    """The non-member rows any task uses, and the tasks re-indexed onto [members; those rows].

    Balancing keeps about as many non-members as members, so with a large holdout (5,000 CIFAR-10
    images for 500 forget samples) most of it is never audited; SG then scores only these rows.
    """
    n_members = tasks[0].n_members
    rows = torch.cat([torch.cat([task.train, task.test]) for task in tasks])
    used = torch.unique(rows[rows >= n_members]) - n_members
    position = torch.full((int(used.max()) + 1 if len(used) else 1,), -1, dtype=torch.long)
    position[used] = torch.arange(len(used))

    def remap(part: torch.Tensor) -> torch.Tensor:
        is_member = part < n_members
        return torch.where(is_member, part, n_members + position[(part - n_members).clamp_min(0)])

    return ([AuditorTask(task.group, n_members, remap(task.train), remap(task.test), task.train_weights,
                         task.test_weights) for task in tasks], used.numpy())


def auditor_loss(margins: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample loss of a linear auditor with decision value `margins` and targets in {0, 1}."""
    signs = 2 * targets - 1
    if kind == "logistic":
        return F.softplus(-signs * margins)
    if kind == "sqhinge":
        return F.relu(1 - signs * margins) ** 2
    if kind == "svm":
        return F.relu(1 - signs * margins)
    raise UnlearnInputError(f"unknown auditor {kind!r}; use one of {AUDITORS}")


# The solver works on a batch of T auditor problems at once, padded to a common row count n:
# X (T, n, d) with the bias column, targets t (T, n), row weights w (T, n) = 1/n_k on a problem's
# own rows and 0 on padding, so L_k(θ) = Σ_i w_ki ℓ(t_ki, θ_k·x_ki) + (λ/2)‖θ_k‖².

def _margins(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    return (X @ theta[..., None]).squeeze(-1)


def _gradient(theta, X, t, w, kind: str, l2: float) -> torch.Tensor:
    """∇_θ L, written out so that autograd can take its derivative in X (the mixed term ∂²L/∂θ∂X)."""
    margins = _margins(theta, X)
    if kind == "logistic":
        dloss = torch.sigmoid(margins) - t
    else:
        signs = 2 * t - 1
        dloss = -2 * signs * F.relu(1 - signs * margins)
    return (X.transpose(1, 2) @ (w * dloss)[..., None]).squeeze(-1) + l2 * theta


def _hessian(theta, X, t, w, kind: str, l2: float) -> torch.Tensor:
    margins = _margins(theta, X)
    if kind == "logistic":
        p = torch.sigmoid(margins)
        curvature = p * (1 - p)
    else:  # squared hinge: piecewise quadratic, curvature 2 on the rows inside the margin
        curvature = 2.0 * ((1 - (2 * t - 1) * margins) > 0).to(X.dtype)
    return X.transpose(1, 2) @ (X * (w * curvature)[..., None]) + l2 * torch.eye(X.shape[-1], dtype=X.dtype)


def _objective(theta, X, t, w, kind: str, l2: float) -> torch.Tensor:
    return (w * auditor_loss(_margins(theta, X), t, kind)).sum(-1) + 0.5 * l2 * theta.pow(2).sum(-1)


def _check_torch_auditor(kind: str, l2: float) -> None:
    if kind not in ("logistic", "sqhinge"):
        raise UnlearnInputError(f"the torch auditor solves 'logistic' or 'sqhinge', not {kind!r}")
    if not l2 > 0:
        raise UnlearnInputError(f"the auditor's ridge l2 must be positive (it makes the optimum unique), got {l2}")


@torch.no_grad()
def solve_auditors(X: torch.Tensor, t: torch.Tensor, w: torch.Tensor, kind: str = "logistic", l2: float = 1e-2,
                   tol: float = 1e-10, max_iter: int = 100) -> torch.Tensor:
    """θ*_k = argmin L_k for a batch of problems (see above), by Newton's method with backtracking.

    Each problem stops when ‖∇L_k‖∞ <= tol or when it is optimal to float64 precision (no step
    lowers L_k measurably, or the step no longer changes θ_k). L_k is λ-strongly convex, so Newton
    converges in a handful of iterations (quadratically for the logistic loss; finitely, in
    practice, for the piecewise-quadratic squared hinge).
    """
    _check_torch_auditor(kind, l2)
    X, t, w = X.double(), t.double(), w.double()
    theta = torch.zeros(X.shape[0], X.shape[-1], dtype=torch.float64)
    value = _objective(theta, X, t, w, kind, l2)
    active = torch.ones(X.shape[0], dtype=torch.bool)
    for _ in range(max_iter):
        grad = _gradient(theta, X, t, w, kind, l2)
        active &= grad.abs().amax(-1) > tol
        if not active.any():
            break
        step = torch.linalg.solve(_hessian(theta, X, t, w, kind, l2), grad)
        decrease = (grad * step).sum(-1)
        size = torch.ones_like(value)
        accepted = ~active  # finished problems take no step
        for _ in range(30):
            trial = theta - size[:, None] * step
            trial_value = _objective(trial, X, t, w, kind, l2)
            ok = ~accepted & (trial_value <= value - 1e-4 * size * decrease)
            theta = torch.where(ok[:, None], trial, theta)
            value = torch.where(ok, trial_value, value)
            accepted |= ok
            if accepted.all():
                break
            size = torch.where(accepted, size, size / 2)
        moved = (size[:, None] * step).abs().amax(-1) > 1e-12 * (1 + theta.abs().amax(-1))
        active &= accepted & moved
    return theta


def solve_auditor(X: torch.Tensor, t: torch.Tensor, kind: str = "logistic", l2: float = 1e-2,
                  tol: float = 1e-10, max_iter: int = 100) -> torch.Tensor:
    """θ* = argmin mean_i ℓ(t_i, θ·x_i) + (λ/2)‖θ‖² for one problem; `X` (n, d) carries the bias column."""
    weights = torch.full((1, len(t)), 1.0 / len(t), dtype=torch.float64)
    return solve_auditors(X[None], t[None], weights, kind, l2, tol, max_iter)[0]


def implicit_optima(X: torch.Tensor, t: torch.Tensor, w: torch.Tensor, kind: str = "logistic",
                    l2: float = 1e-2, tol: float = 1e-10) -> torch.Tensor:
    """θ*(X) whose value is the solved optimum and whose gradient in X is −H⁻¹ ∂²L/∂θ∂X (batched).

    θ* is found without a graph; then θ* − H⁻¹∇_θL(θ*, X) with H⁻¹ held constant has, at the
    optimum (∇_θL = 0), exactly the implicit derivative, and autograd supplies ∂²L/∂θ∂X. The
    correction is added as (c − c.detach()) so the value stays the solver's θ*.
    """
    X, t, w = X.double(), t.double(), w.double()
    theta = solve_auditors(X.detach(), t, w, kind, l2, tol)
    hessian = _hessian(theta, X.detach(), t, w, kind, l2)
    correction = -torch.linalg.solve(hessian, _gradient(theta, X, t, w, kind, l2))
    return theta + (correction - correction.detach())


def implicit_optimum(X: torch.Tensor, t: torch.Tensor, kind: str = "logistic", l2: float = 1e-2,
                     tol: float = 1e-10) -> torch.Tensor:
    """`implicit_optima` for one problem, `X` (n, d) with the bias column."""
    weights = torch.full((1, len(t)), 1.0 / len(t), dtype=torch.float64)
    return implicit_optima(X[None], t[None], weights, kind, l2, tol)[0]


def cvxpylayers_available() -> bool:
    try:
        import cvxpy  # noqa: F401
        import cvxpylayers.torch  # noqa: F401
    except ImportError:
        return False
    return True


def cvx_optimum(X: torch.Tensor, t: torch.Tensor, kind: str = "svm", l2: float = 1e-2) -> torch.Tensor:
    """The paper's route: θ*(X) from a differentiable convex optimisation layer (cvxpylayers).

    `kind="svm"` is the paper's hinge-loss linear SVM (plus the ridge, see the module notes);
    `kind="sqhinge"` poses the torch auditor's problem, to check one solver against the other.
    Needs the optional extra: `pip install "unlearn[svm]"`.
    """
    if not cvxpylayers_available():
        raise UnlearnInputError('the cvxpylayers auditor needs the optional extra: pip install "unlearn[svm]"')
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    if kind not in ("svm", "sqhinge"):
        raise UnlearnInputError(f"the cvxpylayers auditor solves 'svm' or 'sqhinge', not {kind!r}")
    n, d = X.shape
    features = cp.Parameter((n, d))
    theta = cp.Variable(d)
    signs = (2 * t.detach().double() - 1).numpy()
    slack = cp.pos(1 - cp.multiply(signs, features @ theta))
    loss = cp.sum(slack) if kind == "svm" else cp.sum_squares(slack)
    problem = cp.Problem(cp.Minimize(loss / n + 0.5 * l2 * cp.sum_squares(theta)))
    layer = CvxpyLayer(problem, parameters=[features], variables=[theta])
    # Tight SCS tolerances and diffcp's dense derivative: its default iterative (LSQR) derivative
    # is off by a few degrees even when the solution is exact. One process: the CPU is shared.
    solver_args = {"eps_abs": 1e-10, "eps_rel": 1e-10, "n_jobs_forward": 1}
    if torch.is_grad_enabled() and X.requires_grad:  # the solve-only path takes no derivative options
        solver_args |= {"mode": "dense", "n_jobs_backward": 1}
    (solution,) = layer(X.double(), solver_args=solver_args)
    return solution


@dataclass
class AuditOutcome:
    """The auditors' mean held-out utility (differentiable in the features) and pooled accuracy."""

    utility: torch.Tensor
    accuracy: float  # percent of held-out rows classified correctly (by weight), pooled over all auditors
    n_auditors: int


@torch.no_grad()
def feature_scale(member_features: torch.Tensor, nonmember_features: torch.Tensor,
                  tasks: list[AuditorTask]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and deviation over every row any auditor uses: the auditors' fixed scaling.

    One constant scaling for all auditors: per-task statistics of a dozen rows blow up on
    memorised samples (losses ~1e-4), and statistics that move with the features would make U_a
    depend on them in a way the auditor does not model. SG fixes it from the original model.
    """
    stacked = torch.cat([member_features, nonmember_features]).double()
    used = torch.unique(torch.cat([torch.cat([task.train, task.test]) for task in tasks]))
    return stacked[used].mean(0), stacked[used].std(0).nan_to_num(1.0).clamp_min(1e-6)


def _padded(parts: list[torch.Tensor], n_members: int, part_weights: list[torch.Tensor | None]):
    """Row indices padded to one length, their targets, and weights (1/n_k unless given; 0 on padding)."""
    width = max(len(p) for p in parts)
    index = torch.zeros(len(parts), width, dtype=torch.long)
    weights = torch.zeros(len(parts), width, dtype=torch.float64)
    for k, (rows, given) in enumerate(zip(parts, part_weights)):
        index[k, :len(rows)] = rows
        weights[k, :len(rows)] = 1.0 / len(rows) if given is None else given
    return index, (index < n_members).double(), weights


def audit(member_features: torch.Tensor, nonmember_features: torch.Tensor, tasks: list[AuditorTask], *,
          kind: str = "sqhinge", l2: float = 1e-2, tol: float = 1e-10,
          scale: tuple[torch.Tensor, torch.Tensor] | None = None, solver: str = "auto") -> AuditOutcome:
    """Fit every auditor task on its training rows; score it on its test rows.

    U_a = mean over auditors of minus the held-out loss (`kind`'s own loss). Gradients flow into
    both feature tensors: through θ* by implicit differentiation (torch auditors, all tasks in one
    batched solve) or the cvxpylayers layer (`kind="svm"`), and directly through the held-out
    rows. Features are standardised by `scale` (default: `feature_scale` of these features, held
    constant). `solver`: "torch", "cvxpylayers" or "auto" (cvxpylayers for "svm", torch otherwise).
    """
    if kind not in AUDITORS:
        raise UnlearnInputError(f"unknown auditor {kind!r}; use one of {AUDITORS}")
    if solver == "auto":
        solver = "cvxpylayers" if kind == "svm" else "torch"
    if solver not in ("torch", "cvxpylayers"):
        raise UnlearnInputError(f"unknown auditor solver {solver!r}; use 'torch', 'cvxpylayers' or 'auto'")
    n_members = len(member_features)
    mean, std = scale if scale is not None else feature_scale(member_features, nonmember_features, tasks)
    standardised = (torch.cat([member_features, nonmember_features]).double() - mean.double()) / std.double()
    with_bias = torch.cat([standardised, torch.ones(len(standardised), 1, dtype=torch.float64)], 1)
    train_index, t, w = _padded([task.train for task in tasks], n_members, [task.train_weights for task in tasks])
    test_index, t_test, w_test = _padded([task.test for task in tasks], n_members, [task.test_weights for task in tasks])
    X, X_test = with_bias[train_index], with_bias[test_index]
    if solver == "torch":
        theta = implicit_optima(X, t, w, kind, l2, tol)
    else:
        theta = torch.stack([cvx_optimum(X[k, :len(task.train)], t[k, :len(task.train)], kind, l2)
                             for k, task in enumerate(tasks)])
    margins = _margins(theta, X_test)
    utility = -(w_test * auditor_loss(margins, t_test, kind)).sum(-1).mean()
    # Pooled over auditors, each row counted by its weight times its task's row count: plain
    # pooled accuracy for equally weighted rows, balanced accuracy within a weighted task.
    sizes = torch.tensor([len(task.test) for task in tasks], dtype=torch.float64)[:, None]
    correct = (((margins.detach() > 0).double() == t_test).double() * w_test * sizes).sum()
    return AuditOutcome(utility, 100.0 * float(correct) / float(sizes.sum()), len(tasks))
