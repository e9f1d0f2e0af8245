import json

import pytest
import torch
from safetensors.torch import save_file

from unlearn import data, models, training
from unlearn.errors import UnlearnInputError


def test_digits_mlp_fits_and_generalises(digits_original, digits):
    assert models.accuracy(digits_original, digits.train) >= 99.0
    assert models.accuracy(digits_original, digits.test) >= 90.0


def test_same_seed_gives_bit_identical_weights(digits):
    recipe = training.get_recipe("digits").with_(epochs=3)
    a = training.train("mlp", digits, recipe=recipe, seed=7, progress=False)
    b = training.train("mlp", digits, recipe=recipe, seed=7, progress=False)
    c = training.train("mlp", digits, recipe=recipe, seed=8, progress=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("arch, args", [("mlp", {}), ("cnn", {"width": 8}), ("resnet18", {"width": 8, "depth": 8}),
                                        ("vgg11", {"width_scale": 0.125})])
def test_architectures_save_and_load_exactly(tmp_path, digits, arch, args):
    torch.manual_seed(0)
    model = models.create(arch, digits, **args)
    x = digits.test.inputs()[:16]
    path = models.save_model(model, tmp_path / "m.safetensors")
    loaded = models.load_model(path, digits)
    assert loaded.spec["arch"] == arch and loaded.spec["arch_args"] == args
    assert torch.equal(models.logits(model, x), models.logits(loaded, x))


def test_cifar_resnet18_has_no_maxpool_and_3x3_stem():
    net = models.build("resnet18", 10, (3, 32, 32))
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert net.stem[0].kernel_size == (3, 3) and net.stem[0].stride == (1, 1)
    assert 11_000_000 < sum(p.numel() for p in net.parameters()) < 11_300_000  # the 11.2M of ResNet-18


def test_model_for_another_dataset_is_refused(tmp_path, digits):
    other = data.Dataset("other", digits.train, digits.test, tuple("abcde"), "x")
    path = models.save_model(models.create("mlp", other), tmp_path / "m.safetensors")
    with pytest.raises(UnlearnInputError, match="5 classes"):
        models.load_model(path, digits)


def test_corrupt_or_foreign_files_are_refused(tmp_path, digits):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UnlearnInputError, match="not a readable safetensors"):
        models.load_model(junk, digits)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign, metadata={"format": "other"})
    with pytest.raises(UnlearnInputError, match="without unlearn model metadata"):
        models.load_model(foreign, digits)
    good = models.save_model(models.create("mlp", digits), tmp_path / "good.safetensors")
    blob = bytearray(good.read_bytes())
    header_len = int.from_bytes(blob[:8], "little")
    meta = json.loads(blob[8:8 + header_len])
    meta["__metadata__"]["spec"] = meta["__metadata__"]["spec"].replace('"mlp"', '"cnn"')
    header = json.dumps(meta).encode()
    header += b" " * (-len(header) % 8)
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(len(header).to_bytes(8, "little") + header + blob[8 + header_len:])
    with pytest.raises(UnlearnInputError, match="do not fit"):
        models.load_model(tampered, digits)


def test_divergence_stops_with_the_step(digits):
    from unlearn.errors import DivergenceError

    model = models.create("mlp", digits)
    recipe = training.get_recipe("digits").with_(lr=1e6, epochs=5, schedule="constant")
    with pytest.raises(DivergenceError, match="step"):
        training.fit(model, digits.train, recipe, progress=False, name="exploding")


def test_schedules_shape():
    r = training.Recipe(epochs=10, schedule="step", step_size=4, gamma=0.1)
    f = training.lr_factor(r, steps_per_epoch=5)
    assert f(0) == 1.0 and f(19) == 1.0 and abs(f(20) - 0.1) < 1e-12 and abs(f(45) - 0.01) < 1e-12
    one = training.lr_factor(r.with_(schedule="onecycle"), 5)
    peak = max(one(i) for i in range(50))
    assert abs(peak - 1.0) < 1e-9 and one(49) < 0.05 and one(0) < 0.1
