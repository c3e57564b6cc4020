"""Mesh construction, logical->mesh rules, derived shardings, FSDP memory, replication guard."""

import dataclasses
import logging

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from audiolm_pt import objectives, sharding
from audiolm_pt.models import config as model_config
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.train import grad_accum

FSDP8 = sharding.ShardingConfig(ici_data=1, ici_fsdp=-1)
MIXED = sharding.ShardingConfig(ici_data=2, ici_fsdp=2, ici_tensor=2)


def _named(init, names):
    return nnx.with_partitioning(init, names, eager_sharding=False)


class _MLP(nnx.Module):
    """Stand-in model: embedding, `depth` MLP blocks and an unnamed scalar."""

    def __init__(self, vocab: int, width: int, hidden: int, depth: int, *, rngs: nnx.Rngs):
        lecun = nnx.initializers.lecun_normal()
        self.embed = nnx.Embed(
            vocab,
            width,
            embedding_init=_named(nnx.initializers.normal(), ("vocab", "embed")),
            rngs=rngs,
        )
        self.up = nnx.List(
            [
                nnx.Linear(
                    width,
                    hidden,
                    kernel_init=_named(lecun, ("embed", "mlp")),
                    bias_init=_named(nnx.initializers.zeros, ("mlp",)),
                    rngs=rngs,
                )
                for _ in range(depth)
            ]
        )
        self.down = nnx.List(
            [
                nnx.Linear(
                    hidden,
                    width,
                    kernel_init=_named(lecun, ("mlp", "embed")),
                    bias_init=_named(nnx.initializers.zeros, ("embed",)),
                    rngs=rngs,
                )
                for _ in range(depth)
            ]
        )
        self.scale = nnx.Param(jnp.ones(()))

    def __call__(self, tokens):
        x = self.embed(tokens)
        for up, down in zip(self.up, self.down, strict=True):
            x = x + down(jax.nn.gelu(up(x)))
        return self.scale * jnp.mean(x**2)


def test_mesh_fills_minus_one_and_orders_axes():
    mesh = sharding.make_mesh(MIXED)
    assert mesh.axis_names == ("data", "fsdp", "tensor")
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    filled = sharding.make_mesh(sharding.ShardingConfig(ici_data=-1, ici_tensor=4))
    assert dict(filled.shape) == {"data": 2, "fsdp": 1, "tensor": 4}
    single = sharding.make_mesh(sharding.ShardingConfig(), devices=jax.devices()[:1])
    assert single.devices.size == 1


def test_mesh_rejects_bad_factors_naming_the_field():
    with pytest.raises(ValueError, match="ici_"):
        sharding.make_mesh(sharding.ShardingConfig(ici_data=3, ici_fsdp=1))
    with pytest.raises(ValueError, match="only one of"):
        sharding.ShardingConfig(ici_data=-1, ici_fsdp=-1)
    with pytest.raises(ValueError, match="ici_tensor=0"):
        sharding.ShardingConfig(ici_tensor=0)
    with pytest.raises(ValueError, match="3 does not divide 8"):
        sharding.make_mesh(sharding.ShardingConfig(ici_data=-1, ici_fsdp=3))
    with pytest.raises(ValueError, match=r"rules\['embed'\].*'model'"):
        sharding.ShardingConfig(rules=(("batch", "data"), ("embed", "model")))


def test_logical_to_spec_follows_rules_and_drops_non_dividing_axes(caplog):
    mesh = sharding.make_mesh(MIXED)
    rules = MIXED.rules
    assert sharding.logical_to_spec(("embed", "mlp"), (8, 16), rules, mesh) == P("fsdp", "tensor")
    assert sharding.logical_to_spec(
        ("layers", "embed", "heads", "kv"), (2, 4, 4, 8), rules, mesh
    ) == (P(None, "fsdp", "tensor", None))
    with caplog.at_level(logging.INFO, logger="audiolm_pt.sharding"):
        spec = sharding.logical_to_spec(("vocab", "embed"), (7, 8), rules, mesh, what="tok")
    assert spec == P(None, "fsdp")
    assert "tok: not sharding vocab (size 7) over tensor" in caplog.text
    # The same mesh axis may not shard two dimensions of one array.
    both = (("batch", "data"), ("embed", "fsdp"), ("mlp", "fsdp"))
    assert sharding.logical_to_spec(("embed", "mlp"), (8, 8), both, mesh) == P("fsdp", None)
    with pytest.raises(ValueError, match="'widht'"):
        sharding.logical_to_spec(("widht",), (8,), rules, mesh, what="x")


def test_batch_axes_and_sharding():
    mesh = sharding.make_mesh(MIXED)
    assert sharding.batch_axes(MIXED, mesh) == ("data", "fsdp")
    assert sharding.batch_sharding(MIXED, mesh).spec == P(("data", "fsdp"))
    mesh = sharding.make_mesh(FSDP8)
    assert sharding.batch_sharding(FSDP8, mesh).spec == P(("fsdp",))


def test_optimizer_state_mirrors_parameter_shardings():
    mesh = sharding.make_mesh(MIXED)
    params = nnx.state(_MLP(32, 8, 16, 1, rngs=nnx.Rngs(0)), nnx.Param)
    p_sh = sharding.tree_shardings(params, mesh, MIXED.rules)
    assert p_sh["embed"]["embedding"].get_value().spec == P("tensor", "fsdp")
    assert p_sh["up"][0]["kernel"].get_value().spec == P("fsdp", "tensor")
    assert p_sh["scale"].get_value().spec == P()
    opt = jax.eval_shape(optax.adamw(1e-3).init, params)
    o_sh = sharding.tree_shardings(opt, mesh, MIXED.rules)
    adam = o_sh[0]
    assert adam.count.spec == P()
    for moment in (adam.mu, adam.nu):
        got = jax.tree.leaves(moment)
        assert [s.spec for s in got] == [s.spec for s in jax.tree.leaves(p_sh)]
    placed = jax.device_put(params, p_sh)
    assert placed["up"][0]["kernel"].get_value().sharding.spec == P("fsdp", "tensor")


def test_replicated_large_parameter_check_fires_on_wrong_rules():
    mesh = sharding.make_mesh(FSDP8)
    params = nnx.state(_MLP(64, 64, 256, 1, rngs=nnx.Rngs(0)), nnx.Param)
    good = sharding.tree_shardings(params, mesh, FSDP8.rules)
    sharding.check_large_params_sharded(params, good, mesh, max_size=1000)
    wrong = tuple((name, None if name == "embed" else axes) for name, axes in FSDP8.rules)
    bad = sharding.tree_shardings(params, mesh, wrong)
    with pytest.raises(ValueError, match=r"parameter down/0/kernel .*fully replicated"):
        sharding.check_large_params_sharded(params, bad, mesh, max_size=1000)
    # Pure data parallelism replicates by design: nothing to refuse.
    data_mesh = sharding.make_mesh(sharding.ShardingConfig())
    sharding.check_large_params_sharded(
        params, sharding.tree_shardings(params, data_mesh, wrong), data_mesh, max_size=1000
    )


def test_fsdp_shards_parameters_and_adamw_state_in_compiled_step():
    """Per-device parameter + AdamW bytes of a compiled train step on 8-way FSDP."""
    cfg = FSDP8
    mesh = sharding.make_mesh(cfg)
    model = _MLP(1024, 256, 1024, 4, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(1e-3)
    opt = tx.init(params)
    p_sh = sharding.tree_shardings(params, mesh, cfg.rules)
    o_sh = sharding.tree_shardings(opt, mesh, cfg.rules)
    b_sh = sharding.batch_sharding(cfg, mesh)
    sharding.check_large_params_sharded(params, p_sh, mesh, cfg.max_replicated_size)
    tokens = jnp.zeros((8, 4), jnp.int32)

    def step(params, opt, tokens):
        grads = jax.grad(lambda p: nnx.merge(graphdef, p)(tokens))(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    compiled = (
        jax.jit(
            step, in_shardings=(p_sh, o_sh, b_sh), out_shardings=(p_sh, o_sh), donate_argnums=(0, 1)
        )
        .lower(params, opt, tokens)
        .compile()
    )
    mem = compiled.memory_analysis()
    state_bytes = sum(x.nbytes for x in jax.tree.leaves((params, opt)))
    per_device_state = mem.argument_size_in_bytes - tokens.nbytes // 8
    ratio = per_device_state / (state_bytes / 8)
    print(
        f"fsdp8: state {state_bytes / 2**20:.2f} MiB total, "
        f"{per_device_state / 2**20:.3f} MiB per device, ratio {ratio:.3f}"
    )
    assert state_bytes > 20 * 2**20
    assert ratio <= 1.15
    # The same step with every rule replicated holds the whole state on each device.
    replicated = tuple((n, a if n == "batch" else None) for n, a in cfg.rules)
    rep = dataclasses.replace(cfg, rules=replicated)
    r_p = sharding.tree_shardings(params, mesh, rep.rules)
    r_o = sharding.tree_shardings(opt, mesh, rep.rules)
    full = jax.jit(step, in_shardings=(r_p, r_o, b_sh)).lower(params, opt, tokens).compile()
    assert full.memory_analysis().argument_size_in_bytes >= state_bytes


def _abstract_model(size: str, objective: str):
    cfg = model_config.preset(size, objective)
    return nnx.split(nnx.eval_shape(lambda: AudioTextModel(cfg, rngs=nnx.Rngs(0))), nnx.Param, ...)


@pytest.mark.parametrize("objective", ["hybrid", "siglip"])
def test_real_model_large_parameters_are_sharded_by_default_rules(objective):
    _, params, _ = _abstract_model("small", objective)
    for cfg in (FSDP8, MIXED):
        mesh = sharding.make_mesh(cfg)
        shardings = sharding.tree_shardings(params, mesh, cfg.rules)
        sharding.check_large_params_sharded(params, shardings, mesh, cfg.max_replicated_size)


@pytest.mark.slow
def test_fsdp_memory_of_real_model_train_step():
    """The `small` hybrid model's compiled train step (loss, grads, AdamW) on 8-way FSDP."""
    cfg = FSDP8
    mesh = sharding.make_mesh(cfg)
    graphdef, params, rest = _abstract_model("small", "hybrid")
    tx = optax.adamw(1e-3)
    opt = jax.eval_shape(tx.init, params)
    obj = objectives.ObjectiveConfig(objective="hybrid")
    b, t, n = 8, 64, 16
    batch = {
        "features": jax.ShapeDtypeStruct((b, t, 80), jnp.float32),
        "feature_mask": jax.ShapeDtypeStruct((b, t), jnp.bool_),
        "text_tokens": jax.ShapeDtypeStruct((b, n), jnp.int32),
        "text_mask": jax.ShapeDtypeStruct((b, n), jnp.bool_),
        "decoder_inputs": jax.ShapeDtypeStruct((b, n), jnp.int32),
        "decoder_targets": jax.ShapeDtypeStruct((b, n), jnp.int32),
        "decoder_mask": jax.ShapeDtypeStruct((b, n), jnp.bool_),
    }

    def step(params, opt, batch, rng):
        (_, metrics), grads = grad_accum.value_and_grad(graphdef, params, rest, batch, obj, rng)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, metrics

    p_sh = sharding.tree_shardings(params, mesh, cfg.rules)
    o_sh = sharding.tree_shardings(opt, mesh, cfg.rules)
    b_sh = sharding.batch_sharding(cfg, mesh)
    with jax.set_mesh(mesh):
        compiled = (
            jax.jit(step, in_shardings=(p_sh, o_sh, b_sh, None), out_shardings=(p_sh, o_sh, None))
            .lower(params, opt, batch, jax.random.key(0))
            .compile()
        )
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((params, opt)))
    batch_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(batch)) // 8
    per_device = compiled.memory_analysis().argument_size_in_bytes - batch_bytes
    ratio = per_device / (state_bytes / 8)
    print(
        f"small hybrid fsdp8: state {state_bytes / 2**20:.1f} MiB, "
        f"{per_device / 2**20:.2f} MiB per device, ratio {ratio:.3f}"
    )
    assert ratio <= 1.15
