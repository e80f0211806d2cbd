"""The DiT: patches, position code, adaLN-zero blocks (plain and MM-DiT), conditioning, sampling, training, checkpoints."""

import math

import pytest
import torch
import torch.nn.functional as F
from model_helpers import randomized

from lessons.dit import (
    SIZES,
    DiT,
    DiTBlock,
    DiTConfig,
    JointDiTBlock,
    count_parameters,
    dit_config,
    load_dit,
    patchify,
    position_embedding_2d,
    save_dit,
    unpatchify,
)
from lessons.flow_matching import cfm_loss
from lessons.guidance import ClassifierFreeGuidance
from lessons.image_training import generate, save_image_model
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule
from lessons.unet import UNet, unet_config

KINDS = (False, True)  # joint_attention: plain DiT blocks, MM-DiT blocks


def latents(b=3, c=4, s=7, seed=0):
    return torch.randn(b, c, s, s, generator=torch.Generator().manual_seed(seed))


# --- hand-written reference: LayerNorm, softmax attention head by head, the gated residuals --------------


def layer_norm(x, eps=1e-6):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + eps)


def softmax_attention(q, k, v, heads):
    """q (B, N, D), k and v (B, M, D); head h reads features h d .. (h + 1) d - 1, d = D / heads."""
    d, outs = q.shape[-1] // heads, []
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d)  # (B, N, M)
        weights = torch.exp(scores - scores.max(-1, keepdim=True).values)
        outs.append(weights / weights.sum(-1, keepdim=True) @ v[..., cols])
    return torch.cat(outs, dim=-1)


def hand_mods(block, c):
    lin = block.modulation[1]
    return (F.silu(c) @ lin.weight.T + lin.bias).chunk(6, dim=1)


def hand_qkv(block, x, mods):
    h = layer_norm(x) * (1 + mods[1][:, None]) + mods[0][:, None]
    return (h @ block.qkv.weight.T + block.qkv.bias).chunk(3, dim=-1)


def hand_finish(block, x, attended, mods):
    x = x + mods[2][:, None] * (attended @ block.proj.weight.T + block.proj.bias)
    h = layer_norm(x) * (1 + mods[4][:, None]) + mods[3][:, None]
    first, last = block.mlp[0], block.mlp[2]
    hidden = F.gelu(h @ first.weight.T + first.bias, approximate="tanh")
    return x + mods[5][:, None] * (hidden @ last.weight.T + last.bias)


# --- sizes and shapes ----------------------------------------------------------------------------


def test_sizes_parameter_counts_and_shapes_for_both_block_kinds():
    small = count_parameters(DiT(dit_config("small", num_classes=10)))
    assert count_parameters(DiT(dit_config("tiny", num_classes=10))) < small
    assert 150_000 <= small <= 250_000
    x, t, cond = latents(), torch.rand(3), torch.tensor([0, 9, 10])
    for size in SIZES:
        for joint in KINDS:
            model = DiT(dit_config(size, num_classes=10, joint_attention=joint))
            assert model.num_classes == 10 and model.config.joint_attention is joint
            assert model(x=x, t=t, cond=cond).shape == x.shape
    assert DiT(dit_config("tiny"))(x=x, t=t).shape == x.shape


@pytest.mark.parametrize("size, patch", [(7, 1), (7, 7), (8, 2)])
@pytest.mark.parametrize("joint", KINDS)
def test_patch_sizes(size, patch, joint):
    model = randomized(DiT(dit_config("tiny", 3, input_size=size, patch_size=patch, joint_attention=joint)))
    assert model.pos_embedding.shape == ((size // patch) ** 2, 32)
    x = latents(2, 4, size)
    out = model(x=x, t=torch.rand(2), cond=torch.tensor([0, 2]))
    assert out.shape == x.shape and torch.isfinite(out).all()


# --- patches and the position code ----------------------------------------------------------------


@pytest.mark.parametrize("height, width, p", [(7, 7, 1), (7, 7, 7), (8, 8, 2), (6, 4, 2)])
def test_patchify_against_a_loop_and_unpatchify_inverts_it(height, width, p):
    x = torch.randn(2, 3, height, width)
    tokens = patchify(x, p)
    n = 0
    for i in range(height // p):  # patches row by row; inside a patch: channel, then row, then column
        for j in range(width // p):
            patch = x[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p]
            want = torch.stack([patch[:, ch, a, b] for ch in range(3) for a in range(p) for b in range(p)], 1)
            assert torch.equal(tokens[:, n], want)
            n += 1
    assert tokens.shape == (2, n, 3 * p * p)
    assert torch.equal(unpatchify(tokens, p, 3, height, width), x)
    assert torch.equal(patchify(unpatchify(tokens, p, 3, height, width), p), tokens)


def test_position_embedding_against_its_formula():
    g, dim = 3, 8
    emb = position_embedding_2d(g, dim)
    for n in range(g * g):
        row, col = divmod(n, g)
        want = []
        for pos in (row, col):
            freqs = [10_000 ** (-k / 2) for k in range(2)]
            want += [math.sin(pos * w) for w in freqs] + [math.cos(pos * w) for w in freqs]
        assert torch.allclose(emb[n], torch.tensor(want), atol=1e-6)
    codes = position_embedding_2d(7, 32)
    assert torch.cdist(codes, codes).add(torch.eye(49)).min() > 0.1  # every patch has its own code


# --- adaLN-zero: identity blocks, a zero model -------------------------------------------------------


def test_fresh_blocks_are_the_identity_and_a_random_modulation_is_not():
    tokens, context, c = torch.randn(2, 9, 16), torch.randn(2, 3, 16), torch.randn(2, 16)
    block, joint = DiTBlock(16, 4), JointDiTBlock(16, 4)
    assert torch.equal(block(tokens, c), tokens)  # proves adaLN-zero: the gates start at 0
    image_out, context_out = joint(tokens, context, c)
    assert torch.equal(image_out, tokens) and torch.equal(context_out, context)
    with torch.no_grad():  # control: the same blocks with random modulation weights
        for lin in (block.modulation[1], joint.image.modulation[1], joint.context.modulation[1]):
            lin.weight.normal_()
    assert not torch.allclose(block(tokens, c), tokens, atol=1e-3)
    image_out, context_out = joint(tokens, context, c)
    assert not torch.allclose(image_out, tokens, atol=1e-3)
    assert not torch.allclose(context_out, context, atol=1e-3)


@pytest.mark.parametrize("joint", KINDS)
def test_a_fresh_dit_outputs_exactly_zero(joint):
    model = DiT(dit_config("tiny", num_classes=10, joint_attention=joint))
    out = model(x=latents(), t=torch.rand(3), cond=torch.tensor([1, 2, 10]))
    assert torch.equal(out, torch.zeros_like(out))


# --- the attention against a hand-written softmax --------------------------------------------------


def test_dit_block_against_hand_written_attention():
    block = randomized(DiTBlock(16, 4, mlp_ratio=2.0))
    x, c = torch.randn(2, 9, 16), torch.randn(2, 16)
    mods = hand_mods(block, c)
    q, k, v = hand_qkv(block, x, mods)
    want = hand_finish(block, x, softmax_attention(q, k, v, 4), mods)
    assert torch.allclose(block(x, c), want, atol=1e-5)


def test_joint_block_attends_over_context_and_image_together():
    block = randomized(JointDiTBlock(16, 2))
    image, context, c = torch.randn(2, 9, 16), torch.randn(2, 3, 16), torch.randn(2, 16)
    mods_i, mods_c = hand_mods(block.image, c), hand_mods(block.context, c)
    qi, ki, vi = hand_qkv(block.image, image, mods_i)
    qc, kc, vc = hand_qkv(block.context, context, mods_c)
    keys, values = torch.cat([kc, ki], 1), torch.cat([vc, vi], 1)  # [context; image]
    want_i = hand_finish(block.image, image, softmax_attention(qi, keys, values, 2), mods_i)
    want_c = hand_finish(block.context, context, softmax_attention(qc, keys, values, 2), mods_c)
    got_i, got_c = block(image, context, c)
    assert torch.allclose(got_i, want_i, atol=1e-5) and torch.allclose(got_c, want_c, atol=1e-5)
    # control: image tokens attending to themselves only (two separate attentions) is another result
    alone = hand_finish(block.image, image, softmax_attention(qi, ki, vi, 2), mods_i)
    assert not torch.allclose(got_i, alone, atol=1e-3)


# --- conditioning, batches and token order ------------------------------------------------------------


@pytest.mark.parametrize("joint", KINDS)
def test_output_depends_on_time_and_class_and_none_is_the_null_class(joint):
    model = randomized(DiT(dit_config("tiny", num_classes=10, joint_attention=joint)))
    x, t = latents(2), torch.tensor([0.3, 0.7])
    out = model(x=x, t=t, cond=torch.tensor([1, 2]))
    assert not torch.allclose(model(x=x, t=t.flip(0), cond=torch.tensor([1, 2])), out, atol=1e-3)
    assert not torch.allclose(model(x=x, t=t, cond=torch.tensor([3, 4])), out, atol=1e-3)
    assert torch.equal(model(x=x, t=t), model(x=x, t=t, cond=torch.full((2,), 10)))
    # samples do not see each other: half the batch gives the same first half
    assert torch.allclose(model(x=x[:1], t=t[:1], cond=torch.tensor([1])), out[:1], atol=1e-5)
    # the layout the image recipe uses on CUDA (channels_last) gives the same output
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(x=channels_last, t=t, cond=torch.tensor([1, 2])), out, atol=1e-5)


@pytest.mark.parametrize("joint", KINDS)
def test_without_position_embedding_the_dit_is_equivariant_to_permuting_patches(joint):
    model = randomized(DiT(dit_config("tiny", num_classes=3, joint_attention=joint)))
    x, t, cond = latents(2), torch.rand(2), torch.tensor([0, 2])
    perm = torch.randperm(49, generator=torch.Generator().manual_seed(1))

    def shuffle(z):  # the same permutation of the 7 x 7 positions in every channel
        return z.flatten(2)[:, :, perm].reshape(z.shape)

    # control: with the position code, shuffling the patches does not just shuffle the output
    assert not torch.allclose(
        model(x=shuffle(x), t=t, cond=cond), shuffle(model(x=x, t=t, cond=cond)), atol=1e-3
    )
    model.pos_embedding.zero_()  # proves: the position code is what tells the tokens apart
    assert torch.allclose(model(x=shuffle(x), t=t, cond=cond), shuffle(model(x=x, t=t, cond=cond)), atol=1e-5)


# --- guidance, sampling and training ------------------------------------------------------------------


def test_guidance_and_generate_call_the_dit_like_the_unet():
    model = randomized(DiT(dit_config("tiny", num_classes=10)))
    x, t, cond = latents(), torch.rand(3), torch.tensor([0, 4, 9])
    guided = ClassifierFreeGuidance(model, 2.0)(x=x, t=t, cond=cond)
    assert torch.allclose(guided, 3 * model(x=x, t=t, cond=cond) - 2 * model(x=x, t=t), atol=1e-5)
    traj = generate(model, "cfm", x, nfe=2, cond=cond)
    assert traj.xs.shape == (3, 3, 4, 7, 7) and traj.nfe == 2
    half = x + 0.5 * model(x=x, t=torch.zeros(3), cond=cond)  # Euler by hand on t = 0, 0.5, 1
    end = half + 0.5 * model(x=half, t=torch.full((3,), 0.5), cond=cond)
    assert torch.allclose(traj.xs[1], half, atol=1e-5) and torch.allclose(traj.xs[-1], end, atol=1e-5)
    assert generate(model, "cfm", x, nfe=2, cond=cond, guidance=1.0).xs.shape == (3, 3, 4, 7, 7)


def test_a_tiny_dit_learns_a_toy_latent_target_with_cfm():
    torch.manual_seed(0)
    model, path = DiT(dit_config("tiny", num_classes=2)), GaussianPath(LinearSchedule())
    targets = latents(2, seed=5)  # one fixed 4 x 7 x 7 latent per class
    g = torch.Generator().manual_seed(7)
    labels = torch.arange(64) % 2
    noise, t = torch.randn(64, 4, 7, 7, generator=g), torch.rand(64, generator=g)

    def held_out_loss():
        with torch.no_grad():
            return cfm_loss(model, path, targets[labels], noise=noise, t=t, cond=labels).item()

    before = held_out_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        cond = torch.randint(0, 2, (32,))
        loss = cfm_loss(model, path, targets[cond], cond=cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_out_loss() < 0.5 * before


# --- checkpoints --------------------------------------------------------------------------------------


def test_save_and_load_give_the_same_model(tmp_path):
    model = randomized(DiT(dit_config("tiny", num_classes=10, joint_attention=True, class_tokens=2)))
    save_dit(tmp_path / "dit.pt", model, {"method": "cfm", "steps": 100})
    loaded, settings = load_dit(tmp_path / "dit.pt")
    assert not loaded.training and loaded.config == model.config
    assert settings["method"] == "cfm" and settings["dit"] == model.config.to_dict()
    x, t, cond = latents(), torch.rand(3), torch.tensor([0, 5, 10])
    assert torch.equal(loaded(x=x, t=t, cond=cond), model(x=x, t=t, cond=cond))
    save_image_model(tmp_path / "unet.pt", UNet(unet_config("tiny")), {"method": "cfm"})
    with pytest.raises(ValueError, match="no DiT configuration"):
        load_dit(tmp_path / "unet.pt")
    with pytest.raises(TypeError, match="DiT"):
        save_dit(tmp_path / "x.pt", UNet(unet_config("tiny")), {})
    with pytest.raises(TypeError, match="settings"):
        save_dit(tmp_path / "x.pt", model, "cfm")


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"input_size": 0}, ValueError, "input_size"),
        ({"patch_size": 2}, ValueError, "divisible by patch_size"),
        ({"in_channels": 0}, ValueError, "in_channels"),
        ({"hidden": 30, "heads": 4}, ValueError, "divisible by heads"),
        ({"hidden": 6, "heads": 2}, ValueError, "multiple of 4"),
        ({"depth": 0}, ValueError, "depth"),
        ({"heads": 2.0}, ValueError, "heads"),
        ({"mlp_ratio": 0}, ValueError, "mlp_ratio"),
        ({"mlp_ratio": "4"}, TypeError, "mlp_ratio"),
        ({"mlp_ratio": 0.01}, ValueError, "no hidden unit"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"joint_attention": True}, ValueError, "needs num_classes"),
        ({"joint_attention": "yes", "num_classes": 3}, TypeError, "joint_attention"),
        ({"class_tokens": 0, "num_classes": 3}, ValueError, "class_tokens"),
    ],
)
def test_bad_configurations_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        DiTConfig(**kwargs)


def test_bad_names_and_kinds_of_config():
    with pytest.raises(ValueError, match="unknown DiT size 'medium'; choose one of: small, tiny"):
        dit_config("medium")
    with pytest.raises(ValueError, match="unknown DiT setting 'width'"):
        dit_config("tiny", width=3)
    with pytest.raises(TypeError, match=r"DiT\(dit_config\('tiny'\)\)"):
        DiT("tiny")
    with pytest.raises(TypeError, match="the class DiTConfig itself"):
        DiT(DiTConfig)
    assert dit_config("tiny", 10, patch_size=7).patch_size == 7


def test_bad_model_inputs_are_refused():
    model, cond_model = DiT(dit_config("tiny")), DiT(dit_config("tiny", num_classes=10))
    x, t = latents(2), torch.rand(2)
    with pytest.raises(ValueError, match=r"\(B, 4, 7, 7\) \(this DiT was built for input_size=7\)"):
        model(x=latents(2, 4, 8), t=t)
    with pytest.raises(ValueError, match=r"\(B, 4, 7, 7\)"):
        model(x=torch.randn(2, 3, 7, 7), t=t)
    with pytest.raises(TypeError, match="torch tensor"):
        model(x=x.numpy(), t=t)
    with pytest.raises(ValueError, match="torch.float64 but the model's weights are torch.float32"):
        model(x=x.double(), t=t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(x=x, t=t + 2)
    with pytest.raises(ValueError, match="one time per sample"):
        model(x=x, t=torch.rand(3))
    with pytest.raises(ValueError, match="without classes"):
        model(x=x, t=t, cond=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="only 10 classes"):
        cond_model(x=x, t=t, cond=torch.tensor([1, 11]))
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, N, 16\)"):
        DiTBlock(16, 4)(torch.randn(2, 9, 8), torch.randn(2, 16))
    with pytest.raises(ValueError, match=r"c must have shape \(2, 16\)"):
        DiTBlock(16, 4)(torch.randn(2, 9, 16), torch.randn(3, 16))
    with pytest.raises(ValueError, match=r"context must have shape \(2, N, 16\)"):
        JointDiTBlock(16, 4)(torch.randn(2, 9, 16), torch.randn(3, 2, 16), torch.randn(2, 16))
    with pytest.raises(ValueError, match="divisible by heads"):
        JointDiTBlock(16, 3)


def test_bad_patches_and_position_codes_are_refused():
    with pytest.raises(ValueError, match="divisible by patch_size 2"):
        patchify(torch.randn(1, 4, 7, 7), 2)
    with pytest.raises(ValueError, match="4 dimensions"):
        patchify(torch.randn(4, 7, 7), 1)
    with pytest.raises(ValueError, match="float"):
        patchify(torch.zeros(1, 4, 7, 7, dtype=torch.long), 1)
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, 49, 4\)"):
        unpatchify(torch.randn(1, 48, 4), 1, 4, 7, 7)
    with pytest.raises(ValueError, match="multiple of 4"):
        position_embedding_2d(7, 30)
    with pytest.raises(ValueError, match="grid_size"):
        position_embedding_2d(0, 32)
