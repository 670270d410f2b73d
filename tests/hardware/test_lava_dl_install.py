"""lava-dl 0.6 (installed without its stale pins) imports next to torch 2.14 and torchvision 0.29."""

from conftest import require, require_lava


def test_lava_dl_netx_and_slayer_import():
    require_lava()
    netx = require("lava.lib.dl.netx")
    slayer = require("lava.lib.dl.slayer")
    assert hasattr(netx.hdf5, "Network")
    assert hasattr(slayer.neuron, "cuba")
