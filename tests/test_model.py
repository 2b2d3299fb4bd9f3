"""The one model definition: shapes at every supported size, the paper's architecture guidelines, init."""
import pytest
import torch
from torch import nn

from explorer.model import DCGANConfig, Discriminator, Generator, count_parameters


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_round_trip(size, channels):
    config = DCGANConfig(image_size=size, channels=channels, g_width=8, d_width=8)
    G, D = Generator(config), Discriminator(config)
    z = torch.randn(3, config.z_dim)
    x = G(z)
    assert x.shape == (3, channels, size, size)
    assert x.abs().max() <= 1.0  # Tanh output
    assert D(x).shape == (3,)
    feats = D.features(x)
    assert len(feats) == config.num_upsamplings
    assert feats[-1].shape[-2:] == (4, 4)  # the last block reaches the 4x4 map the head reads


def test_paper_net_at_64px_matches_pytorch_examples_parameter_counts():
    # pytorch/examples/dcgan with nz=100, ngf=ndf=64, nc=3: G 3,576,704 params, D 2,765,568.
    config = DCGANConfig()
    assert count_parameters(Generator(config)) == 3_576_704
    assert count_parameters(Discriminator(config)) == 2_765_568


def test_architecture_guidelines():
    config = DCGANConfig(image_size=64)
    G, D = Generator(config), Discriminator(config)
    # No BN on G's output layer nor on D's input layer; BN everywhere else.
    assert not any(isinstance(m, nn.BatchNorm2d) for m in G.blocks[-1])
    assert isinstance(G.blocks[-1][-1], nn.Tanh)
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in block) for block in G.blocks[:-1])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.blocks[0])
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in block) for block in D.blocks[1:])
    # ReLU in G, LeakyReLU(0.2) in D, no pooling or Linear layers anywhere.
    assert all(isinstance(block[-1], nn.ReLU) for block in G.blocks[:-1])
    leaky = [m for m in D.modules() if isinstance(m, nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.2 for m in leaky)
    for net in (G, D):
        assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in net.modules())


def test_init_is_normal_0_002():
    torch.manual_seed(0)
    G = Generator(DCGANConfig())
    w = G.blocks[1][0].weight
    assert abs(w.mean().item()) < 1e-3
    assert abs(w.std().item() - 0.02) < 1e-3


def test_config_validation():
    with pytest.raises(ValueError, match="image_size"):
        DCGANConfig(image_size=48)
    with pytest.raises(ValueError, match="channels"):
        DCGANConfig(channels=2)
    with pytest.raises(ValueError, match="unknown"):
        DCGANConfig.from_dict({"image_size": 64, "bogus": 1})
    assert DCGANConfig.from_dict(DCGANConfig(image_size=32).to_dict()) == DCGANConfig(image_size=32)
