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
(METHODS.md, SG). Two smooth losses make H well defined: logistic regression and the
squared-hinge SVM. The paper's auditor, a linear hinge-loss SVM solved through cvxpylayers
(Agrawal et al., NeurIPS 2019), is available when the optional `svm` extra is installed; it is
the check the torch version is tested against.

Deviations from the paper, and why:
- An L2 ridge λ on every auditor parameter (bias included). The public code fits an
  unregularised SVM; on separable member/non-member features its optimum is not unique and its
  gradient is ill-defined (METHODS.md, "known defects"). The ridge makes L strongly convex.
- Features are standardised (one constant mean and deviation per feature over all audited
  rows), so that λ means the same for logits and losses.
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
    """

    group: int
    n_members: int
    train: torch.Tensor
    test: torch.Tensor

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


def audit_tasks(member_labels, nonmember_labels, *, per_class: bool, n_splits: int = 3,
                train_fraction: float = 0.7, seed: int = 0) -> list[AuditorTask]:
    """Balanced, class-stratified auditor fits (SG: 70/30 splits, 3 of them, one auditor per class).

    Within every class the larger side is subsampled to the size of the smaller, so members and
    non-members are balanced class by class. `per_class=True` (random forgetting) gives one
    auditor per class; `per_class=False` (class forgetting) one auditor over the forgotten classes,
    whose non-members are the held-out samples of those classes. Classes with fewer than two
    members or non-members cannot be split and are left out.
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
                members.append(rng.choice(m, k, replace=False))
                nonmembers.append(rng.choice(nm, k, replace=False))
        if not members:
            continue
        members, nonmembers = np.concatenate(members), np.concatenate(nonmembers)
        rows = np.concatenate([members, n_members + nonmembers])
        # Strata: (class, membership), so both the class mix and the balance survive the split.
        strata = np.concatenate([member_labels[members] * 2 + 1, nonmember_labels[nonmembers] * 2])
        for _ in range(n_splits):
            train, test = _stratified_split(strata, train_fraction, rng)
            tasks.append(AuditorTask(int(group[0]) if per_class else -1, n_members,
                                     torch.as_tensor(rows[train]), torch.as_tensor(rows[test])))
    if not tasks:
        raise UnlearnInputError(
            "SG's auditor needs, in at least one class, 2 forget samples and 2 held-out non-members; "
            f"forget classes {classes.tolist()}, held-out classes {np.unique(nonmember_labels).tolist()}"
        )
    return tasks


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


def _gradient(theta: torch.Tensor, X: torch.Tensor, t: torch.Tensor, kind: str, l2: float) -> torch.Tensor:
    """∇_θ L, written out so that autograd can take its derivative in X (the mixed term ∂²L/∂θ∂X)."""
    margins = X @ theta
    if kind == "logistic":
        dloss = torch.sigmoid(margins) - t
    else:
        signs = 2 * t - 1
        dloss = -2 * signs * F.relu(1 - signs * margins)
    return X.T @ dloss / len(t) + l2 * theta


def _hessian(theta: torch.Tensor, X: torch.Tensor, t: torch.Tensor, kind: str, l2: float) -> torch.Tensor:
    margins = X @ theta
    if kind == "logistic":
        p = torch.sigmoid(margins)
        curvature = p * (1 - p)
    else:  # squared hinge: piecewise quadratic, curvature 2 on the rows inside the margin
        curvature = 2.0 * ((1 - (2 * t - 1) * margins) > 0).to(X.dtype)
    return (X.T * curvature) @ X / len(t) + l2 * torch.eye(X.shape[1], dtype=X.dtype)


def _objective(theta, X, t, kind, l2):
    return auditor_loss(X @ theta, t, kind).mean() + 0.5 * l2 * theta.dot(theta)


@torch.no_grad()
def solve_auditor(X: torch.Tensor, t: torch.Tensor, kind: str = "logistic", l2: float = 1e-2,
                  tol: float = 1e-10, max_iter: int = 100) -> torch.Tensor:
    """θ* = argmin L(θ; X) by Newton's method with backtracking, to ‖∇L‖∞ <= tol or float64 precision.

    `X` already carries the bias column. L is λ-strongly convex, so Newton converges fast
    (quadratically for the logistic loss; finitely, in practice, for the piecewise-quadratic
    squared hinge).
    """
    if kind not in ("logistic", "sqhinge"):
        raise UnlearnInputError(f"the torch auditor solves 'logistic' or 'sqhinge', not {kind!r}")
    if l2 <= 0:
        raise UnlearnInputError(f"the auditor's ridge l2 must be positive (it makes the optimum unique), got {l2}")
    X, t = X.double(), t.double()
    theta = torch.zeros(X.shape[1], dtype=torch.float64)
    value = _objective(theta, X, t, kind, l2)
    for _ in range(max_iter):
        grad = _gradient(theta, X, t, kind, l2)
        if grad.abs().max() <= tol:
            break
        step = torch.linalg.solve(_hessian(theta, X, t, kind, l2), grad)
        for halvings in range(30):
            candidate = theta - 0.5**halvings * step
            new_value = _objective(candidate, X, t, kind, l2)
            if new_value <= value - 1e-4 * 0.5**halvings * grad.dot(step):
                break
        else:
            # No step lowers L measurably: θ is optimal to float64 precision (the gradient is then
            # ~1e-9 or less, where a decrease of L falls below rounding).
            break
        theta, value = candidate, new_value
        if (0.5**halvings * step).abs().max() <= 1e-12 * (1 + theta.abs().max()):
            break  # the step no longer changes θ in float64: optimal to precision (large features)
    return theta


def implicit_optimum(X: torch.Tensor, t: torch.Tensor, kind: str = "logistic", l2: float = 1e-2,
                     tol: float = 1e-10) -> torch.Tensor:
    """θ*(X) whose value is the solved optimum and whose gradient in X is −H⁻¹ ∂²L/∂θ∂X.

    θ* is found without a graph; then θ* − H⁻¹∇_θL(θ*, X) with H⁻¹ held constant has, at the
    optimum (∇_θL = 0), exactly the implicit derivative, and autograd supplies ∂²L/∂θ∂X. The
    correction is added as (c − c.detach()) so the value stays the solver's θ*.
    """
    theta = solve_auditor(X.detach(), t, kind, l2, tol)
    hessian = _hessian(theta, X.detach().double(), t.double(), kind, l2)
    correction = -torch.linalg.solve(hessian, _gradient(theta, X.double(), t.double(), kind, l2))
    return theta + (correction - correction.detach())


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
    accuracy: float  # percent of held-out rows classified correctly, pooled over all auditors
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


def audit(member_features: torch.Tensor, nonmember_features: torch.Tensor, tasks: list[AuditorTask], *,
          kind: str = "sqhinge", l2: float = 1e-2, tol: float = 1e-10,
          scale: tuple[torch.Tensor, torch.Tensor] | None = None, solver: str = "auto") -> AuditOutcome:
    """Fit every auditor task on its training rows; score it on its test rows.

    U_a = mean over auditors of minus the held-out loss (`kind`'s own loss). Gradients flow into
    both feature tensors: through θ* by implicit differentiation (torch auditors) or the
    cvxpylayers layer (`kind="svm"`), and directly through the held-out rows. Features are
    standardised by `scale` (default: `feature_scale` of these features, held constant).
    `solver`: "torch", "cvxpylayers" or "auto" (cvxpylayers for "svm", torch otherwise).
    """
    if kind not in AUDITORS:
        raise UnlearnInputError(f"unknown auditor {kind!r}; use one of {AUDITORS}")
    if solver == "auto":
        solver = "cvxpylayers" if kind == "svm" else "torch"
    if solver not in ("torch", "cvxpylayers"):
        raise UnlearnInputError(f"unknown auditor solver {solver!r}; use 'torch', 'cvxpylayers' or 'auto'")
    stacked = torch.cat([member_features, nonmember_features]).double()
    mean, std = scale if scale is not None else feature_scale(member_features, nonmember_features, tasks)
    mean, std = mean.double(), std.double()
    utilities, correct, total = [], 0.0, 0
    for task in tasks:
        train, test = stacked[task.train], stacked[task.test]
        ones = torch.ones(len(train), 1, dtype=torch.float64)
        X = torch.cat([(train - mean) / std, ones], 1)
        X_test = torch.cat([(test - mean) / std, ones[:1].expand(len(test), 1)], 1)
        t, t_test = task.targets(task.train), task.targets(task.test)
        theta = cvx_optimum(X, t, kind, l2) if solver == "cvxpylayers" else implicit_optimum(X, t, kind, l2, tol)
        margins = X_test @ theta
        utilities.append(-auditor_loss(margins, t_test, kind).mean())
        correct += float(((margins.detach() > 0).double() == t_test).sum())
        total += len(t_test)
    return AuditOutcome(torch.stack(utilities).mean(), 100.0 * correct / total, len(tasks))
