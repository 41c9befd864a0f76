"""model.compile: torch.compile in place, plain checkpoint keys, clear errors."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.config import LightlyConfig, resolve
from selfsup.core import build_model, embed_images, read_checkpoint, train_embedding_model
from selfsup.errors import ConfigError
from selfsup.models import compile as compile_module
from selfsup.models.compile import (
    check_compiler,
    compile_in_place,
    compile_method_model,
    is_compiled,
)

TINY: dict[str, Any] = {
    "model": {"name": "resnet-9", "width": 0.125, "num_ftrs": 16, "out_dim": 8},
    "collate": {"input_size": 16},
    "loader": {"num_workers": 0, "batch_size": 4},
}


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )


@pytest.mark.slow
def test_inductor_compiled_module_matches_eager_and_keeps_its_keys() -> None:
    eager = _tiny_net()
    compiled = compile_in_place(copy.deepcopy(eager), what="the test net", backend="inductor")
    assert is_compiled(compiled)
    assert not is_compiled(eager)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefix
    x = torch.randn(3, 3, 8, 8)
    # Forward only: inductor's backward compile would double the test's time; gradients
    # through a compiled backbone are trained in the checkpoint test below.
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-5)


def test_copies_of_a_compiled_module_run_eager_and_disabled_is_a_no_op() -> None:
    net = compile_in_place(_tiny_net(), what="the test net", backend="eager")
    assert is_compiled(net)
    # A copy must not call the original's compiled forward (it is bound to the original).
    for copied in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert not is_compiled(copied)
        copied.eval()
        assert copied(torch.zeros(1, 3, 4, 4)).shape == (1, 5)
    plain = _tiny_net()
    assert compile_method_model(plain, False, what="the test net") is plain
    assert not is_compiled(plain)


def test_a_backend_failure_names_the_key_and_the_way_out() -> None:
    def failing_backend(graph: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> Any:
        raise RuntimeError("cannot lower this graph")

    net = compile_in_place(_tiny_net(), what="the test net", backend=failing_backend)
    with pytest.raises(ConfigError, match=r"the test net.*set model\.compile=false") as info:
        net(torch.zeros(2, 3, 4, 4))
    assert "model.compile=true" in str(info.value)
    # An error of the model itself is not a compile failure and is not rewritten.
    ok = compile_in_place(_tiny_net(), what="the test net", backend="eager")
    with pytest.raises(RuntimeError) as raised:
        ok(torch.zeros(2, 7, 4, 4))  # 7 channels into a 3-channel convolution
    assert not isinstance(raised.value, ConfigError)


def test_inductor_without_a_cpp_compiler_fails_before_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/bin/g++"))
    with pytest.raises(ConfigError, match=r"model\.compile=true needs a C\+\+ compiler.*false"):
        check_compiler("inductor", what="the backbone")
    check_compiler("aot_eager", what="the backbone")  # no code generation: no compiler needed


def test_method_models_compile_their_backbones_in_place() -> None:
    cfg = resolve(LightlyConfig, data={"method": "byol", **TINY})
    model = build_model(cfg.model, cfg.method)
    keys = list(model.state_dict())
    compile_method_model(model, True, what="the byol model", backend="eager")
    parts = dict(model.named_children())
    assert is_compiled(parts["backbone"])
    assert is_compiled(parts["backbone_momentum"])
    assert not is_compiled(parts["projection_head"])
    assert list(model.state_dict()) == keys


def test_config_key_parses_and_refuses_a_non_bool() -> None:
    assert LightlyConfig().model.compile is False
    assert resolve(LightlyConfig, overrides=["model.compile=true"]).model.compile is True
    with pytest.raises(ConfigError, match=r"model\.compile") as info:
        resolve(LightlyConfig, overrides=["model.compile=fast"])
    assert "fast" in str(info.value)


@pytest.mark.slow
def test_a_checkpoint_trained_compiled_loads_uncompiled_and_embeds_the_same(
    make_image_folder: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The eager backend runs dynamo's graphs as they are traced, without generating C++: the
    # plumbing (in-place compile, keys, metadata) at a fraction of inductor's compile time.
    monkeypatch.setattr(compile_module, "DEFAULT_BACKEND", "eager")
    root = make_image_folder(n_classes=2, n_per_class=4)
    compiled_tiny = {**TINY, "model": {**TINY["model"], "compile": True}}
    checkpoint = train_embedding_model(
        input_dir=str(root),
        output_dir=str(tmp_path / "out"),
        trainer={"max_epochs": 1},
        recipe="lightly",
        **compiled_tiny,
    )
    state, metadata = read_checkpoint(checkpoint)
    assert not [key for key in state if "_orig_mod" in key]
    assert metadata["model"]["compile"] is True
    # Loads strictly into an uncompiled model, and compiled or not it embeds the same.
    plain, _, names = embed_images(
        input_dir=str(root), checkpoint=checkpoint, recipe="lightly", **TINY
    )
    again, _, again_names = embed_images(
        input_dir=str(root), checkpoint=checkpoint, recipe="lightly", **compiled_tiny
    )
    assert names == again_names
    assert plain.shape == (8, 16)
    np.testing.assert_allclose(again, plain, rtol=1e-4, atol=1e-5)


def test_a_smaller_last_batch_reuses_the_first_batchs_graph() -> None:
    graphs: list[torch.fx.GraphModule] = []

    def counting_backend(graph: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> Any:
        graphs.append(graph)
        return graph.forward

    eager = _tiny_net().eval()
    net = compile_in_place(
        copy.deepcopy(eager), what="the test net", backend=counting_backend, pad_batches=True
    )
    with torch.inference_mode():  # as embedding runs: batches made in inference mode
        x = torch.randn(5, 3, 6, 6).contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(net(x), eager(x))
        last = net(x[:2])  # padded to 5 rows, the first two returned
        torch.testing.assert_close(last, eager(x[:2]))
    assert last.shape == (2, 5)
    assert len(graphs) == 1
    # Without padding (and in training mode, where BatchNorm mixes samples) a new shape is a
    # new graph.
    plain = compile_in_place(copy.deepcopy(eager), what="the test net", backend=counting_backend)
    with torch.inference_mode():
        plain(x)  # may reuse the graph above (dynamo caches per code object, guarded)
        before = len(graphs)
        plain(x[:2])
    assert len(graphs) == before + 1
