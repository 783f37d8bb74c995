"""The on-disk trunk store (sbir_lib.training.trunk_store): built once, read after, rebuilt when it does not match."""
import json

import torch

from sbir_lib.models.dssa import DSSANet
from sbir_lib.training import triplet as T
from sbir_lib.training import trunk_store as TS


def _images(n=3, seed=0):
    return torch.randint(0, 256, (n, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _fn(crops):  # a stand-in trunk: 8x8 average pooling of the crop, 2 channels
    x = crops.float() / 255
    m = torch.nn.functional.adaptive_avg_pool2d(x, 8)
    return torch.cat([m, 1 - m], dim=1)


def test_built_once_then_read_and_rebuilt_when_corrupt(tmp_path):
    imgs = _images()
    views = TS.train_views(len(imgs), 2, seed=0)
    a, info = TS.trunk_maps_of(_fn, "w1", imgs, views, trunk="toy", stage="s", root=tmp_path, amp=False,
                               dtype=torch.float32)
    assert not info["read"] and a.shape == (3, 2, 2, 8, 8)
    b, info = TS.trunk_maps_of(_fn, "w1", imgs, views, trunk="toy", stage="s", root=tmp_path, amp=False,
                               dtype=torch.float32)
    assert info["read"] and torch.equal(a, b)
    # the maps are those of the views drawn: view (oy, ox, flip) of image 0
    oy, ox, fl = views[0, 1].tolist()
    crop = imgs[0, oy:oy + 225, ox:ox + 225]
    crop = crop.flip(-1) if fl else crop
    assert torch.allclose(a[0, 1], _fn(crop[None, None]), atol=1e-6)
    # a damaged file (same size, other bytes) is rebuilt, never read
    path = tmp_path / "trunk_cache" / info["file"]
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    said = []
    c, info = TS.trunk_maps_of(_fn, "w1", imgs, views, trunk="toy", stage="s", root=tmp_path, amp=False,
                               dtype=torch.float32, log=said.append)
    assert not info["read"] and torch.equal(a, c) and "does not match" in said[0]
    # other weights, other images or other views: another file
    names = {info["file"]}
    for kw in ({"weights": "w2"}, {"images": _images(seed=1)}, {"views": TS.train_views(3, 2, seed=1)}):
        args = {"weights": "w1", "images": imgs, "views": views, **kw}
        _, i2 = TS.trunk_maps_of(_fn, args["weights"], args["images"], args["views"], trunk="toy", stage="s",
                                 root=tmp_path, amp=False, dtype=torch.float32)
        names.add(i2["file"])
    assert len(names) == 4
    meta = json.loads((tmp_path / "trunk_cache" / info["file"].replace(".pt", ".json")).read_text())
    assert meta["shape"] == [3, 2, 2, 8, 8] and len(meta["sha256"]) == 64


def test_stored_test_views_give_the_network_embeddings(tmp_path, monkeypatch):
    """The head on stored trunk maps of the 10 test views equals the whole network on those views."""
    monkeypatch.setenv("SBIR_DATA_ROOT", str(tmp_path))
    torch.manual_seed(0)
    model = DSSANet(T.MD.get_variant("full", backbone="efficientnet_lite0_b15")).eval()
    model.freeze("conv4")
    imgs = _images(2)
    ref = T.embed_views(model, imgs, 10, torch.device("cpu"), amp=False)
    got = T.stored_embed_views(model, imgs, 10, torch.device("cpu"), amp=False)
    assert got.shape == ref.shape == (10, 2, model.embed_dim)
    assert torch.allclose(got, ref, atol=1e-4)
    assert any((tmp_path / "trunk_cache").glob("*.pt"))
