"""Where the model and sample data live, and how to fetch them with pinned hashes.

Stdlib only: ``scripts/fetch-assets`` runs this file before any venv exists.
Search order: ``$EDGECAM_ASSETS``, ``../shared`` beside the project, then
``assets/`` inside the project (where the fetch step writes).
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GH = "https://raw.githubusercontent.com/"
COCO = "http://images.cocodataset.org/val2017/"

MODEL_FP32 = "models/yolox_nano.onnx"
MODEL_LABELS = "models/yolox_nano.labels.txt"
VIDEO_DIR = "data/video"
COCO_DIR = "data/coco-sample"

COCO_PINS: dict[str, str] = {
    "000000000139": "ffe0f0cec3b2e27aab1967229cdf0a0d7751dcdd5800322f0b8ac0dffb3b8a8d",
    "000000000285": "f3a2974ce3686332609124c70e3e6a2e3aca43fccf1cd1bd7c5c03820977f57d",
    "000000000632": "a4cd7f45ac1ce27eaafb254b23af7c0b18a064be08870ceaaf03b2147f2ce550",
    "000000000724": "5c0e559c75d3969c8e3e297b61f61063f78045c9d4802b526ba616361f3823fd",
    "000000000776": "1dd31e9059c491992be2f562624eb4093e17aee08b4f7baf5ff9ea24543b0a33",
    "000000000785": "83981537a7baeafbeb9c8cb67b3484dc26433f574b3685d021fa537e277e4726",
    "000000000802": "d5b79e7fa716f85ca86f46e5f518da9b6c5e26414925624d76e6476861aec495",
    "000000000872": "c2aa138ee3a59b057a7ba6fc5a6a18e62af531aa7dab78a7bfd33c1cd7e55eb6",
    "000000000885": "1c67b783f78b18ddb5dd20aaba4d4aacaf98e5277051688a96da096afa9cdf1f",
    "000000001000": "24bb77a31928404e45a0454b06f6a0bd54a8db103590c9d7917288a1e0269f05",
    "000000001268": "8e85a2e71ee512fe748a3a3be9bb40b8591e8c501c0f3896efcb5be5999ec236",
    "000000001296": "34a98da7c11bc8811e6eec445145bb16f3d5f4338945ba116edcc1fe554d181b",
    "000000001353": "1cccef217a1e5eec2acc74d7c08a105da3ef6fdb8514e221cdea9b0b373b60ea",
    "000000001425": "71a37c25cdf944cf0a88b66d00a66cf899a88bd55c7ac80fcf1c76329d617e6c",
    "000000001490": "a044804a0b0186a1267acae34975932f14ede96c4a2b78fcee74e6c2fbd8414d",
    "000000001503": "06c721f0a62bcb9fcb2d2d0cc0b9edd63092084a8773a18c4b5a7bd6fb4f095d",
    "000000001532": "974f2af6d81f65627a680ea9f42bdee1067a0ddcdb9f8e7a945bacd21d4dc2ce",
    "000000001584": "77131e2f74aa7e374f951a69157cf7f51e00201f81bacfa8a9ab7309b245553f",
    "000000001675": "6ba641627c08ef424b7dc3e6cee069aa0dd49615a31c54ae0de1ecd1fabd9dea",
    "000000001761": "c06b1845c54bb886a8fb9f8a6e908b29ceb661ffda1ca8df9a27f123806de648",
    "000000001818": "e638b349929d13bb27e148f4303a576e0a964ef81c0907d36748e0adb822a8e6",
    "000000001993": "039f3bfb862023bde7f835a36c32d8f59a3e66488863c2a47b7b746e78c44186",
    "000000002006": "eda4af13818b566f8fa4f479e76286ad90cd5da2e8dfd530be0ab3637e1482ed",
    "000000002149": "3ef0da375244c3fdbb45bcfe5689e8e46fb616c00250f9dce6aa34d301801ac5",
    "000000002153": "8795ff243cf20405bd442631d5d1cb7e60665dd459c8d57f5764333808dd49fd",
    "000000002157": "1a038609e5ceb0719105b1438d257c3d588e45384cb7ffe77b137e4d7e3ed477",
    "000000002261": "1a0ad595a5675bdc7a5e95c04def56109c00d61168fd826158322fd538d70279",
    "000000002299": "d53d17dd8ecded4ae25555a0b8e193445846c7db7a6199c3ea35b09b3021f99e",
    "000000002431": "fa0ce7b066c2fe7bd0892aa2c6361943148db9766de60241e69d8026a18e05ad",
    "000000002473": "2f1bfa7634a64f7999ba5488ec904ad1f85bbc63d0fe4b9fe35f52abbf8c5f4f",
    "000000002532": "fc017f5308d348bdb6011f2312b10853ccd780a4a7369f48774ef67f499f2e77",
    "000000002587": "bc37072a4f32bc99d6b02a684dd9bc69bd63567382315e5f497c9bb4a44c7208",
    "000000002592": "ffa3d472d44184b1f48878f7b097189723e57a24f36c44c29e4bc561110fbf41",
    "000000002685": "2430b9bffb5ff52dfbaf7b922ac8018547e233a5996a6b017bd1a206a46c5bdb",
    "000000002923": "46d2a5feb3f953b59316daee47b45332f07ebde1f88eb361f29b35c1fbbb62e0",
    "000000003156": "3c929365d99581f03b70a810819df4781ac024d88dec7e592229cbea7489a779",
    "000000003255": "c075f51a798e65d23e1c65a3fcc7736aeae4e03fbdd126f6d6b82cb07957d28b",
    "000000003501": "9615e4dc9099e860748ce3f839ed077fa6a1fa39a10b909c00600bf4e2b3f392",
    "000000003553": "4286197d2b6fc18809a37a4ef3035109509fcf52782fb83894835faaa5743bea",
    "000000003661": "8746b068c166782f4b4fb7e6be9d16e5311e9c15bc867e21409b7f5d2eddefb4",
    "000000003845": "d5c4394c712e5c24586f2531e2adf25d14e398993cc12af561ca760f20881df0",
    "000000003934": "c7b1180c75a332e8768a4ca76b1fe8b3e3e073e2b925d94f43fa5439535d5dcf",
    "000000004134": "2c922f6ec30f9c4eca2b373c8808f63979c26f4d89242754b3576bf78db1108b",
    "000000004395": "14ffbd7ab7a01e0dd7fc9676a688bd2c916766e2edb6e1d12ac9ae0ed07b122a",
    "000000004495": "cf670ca35fb16e59ecce82eecf9bf1f60d2ee333be81b61c4ea390be2c7e7b2b",
    "000000004765": "90fab997d1351b1c2ae1a437689245f962dbfa58e577911c9c83991490aadc5e",
    "000000004795": "6f8994bac6aef0602d4aa4397ecd4b7d579f5b18f66058a2df021352dd22bdc6",
    "000000005001": "99600c56dc25c72dc1cc1d1f2b09aa33b97142560b54d034fa83a38fcf3c5b0f",
    "000000005037": "b47318f2a6f652027f6435c462fae0567d925f67ab3279d08d5da2f322322dda",
    "000000005060": "5d3d8315695f7c718b649c06afe32c792bcce9d4a97f544fc1ba19bc592d8cd3",
    "000000005193": "2f0360e89d71b146cbfaee05e934303864fa61d9bf1a1f5cc0c2e508b8191b8d",
    "000000005477": "3b3ed6a27e07126c2175d168405a9bffe60b0f03555d0ac4b33ec0788bd745f2",
    "000000005503": "ff95bf5ddb4bdbd7f4f0f96d963cd941a0a2b38cfcf7832f25113e8441a443c6",
    "000000005529": "e06b55bf935e76ac31cd8b8a56a3978e2f552d7c967ff8a0b8d0ae3b3445db0e",
    "000000005586": "d7c4ce5acc9c578c41ff04aa60e610423e304e66b77fff92df501c207460b349",
    "000000005600": "37e5625d5de54eb524ad2425d855e1d9d54fcb29c3475dacffc86ab48bcaec39",
    "000000005992": "c33842fbbd9626843b93ede50dd4908221cb0c9bf9837f58861354eec2a4ec56",
    "000000006012": "7cd0d627b15c09f373aa613d013fb2d8ae6bd20bcce0d98aa31b963e6bcca495",
    "000000006040": "ac74264bbc3356e0cb87cdc2edac2e2f7e519ae2c16b0a4e2b943a695163ebf6",
    "000000006213": "0f8ce814489c07920e1f3c3a08842ff832f66340a4487d49de2feb31a45b8132",
    "000000006460": "2526fc01ddf5bef5c5e6e1f665d63b6bc95d8ec14eab286dc080e95f9a3642cd",
    "000000006471": "67fe4f0a7b71ecee846273d654bb8387c180229dc6c4a3060152aed0a776762f",
    "000000006614": "5c4214d0503ea4ad699298cdca84ab631496d58d0ccdc4f6bafba9553fe067c6",
    "000000006723": "1d3ba71e9002721a2bc18791f3c86578d6de38fb61640803657276d53e73663f",
    "000000006763": "e3d8430df8ae6fd8021ca48ce988bcb8a1ae648be8bd3b73b1f0cc9c37f82484",
    "000000006771": "b2cc81a8ab0c23da44dda4b6526515c68dbcb1abf939a371f750ffe22db15f95",
    "000000006818": "99479f61ef2931ea70e161db0859e8706c6e48f13e8cb0798959f52433b01b98",
    "000000006894": "8e2059e2f11b0c3051d105255221dd1474ab9a80907de64f0908ae8234e97c8a",
    "000000006954": "59471a9bed5c28ac2f3ad56af1799340d6acb90f7c87d1f60360d1a9466e89ea",
    "000000007088": "323e51d944faa233acfa36f23598bad7f8bae8107d089949ae792267bac03770",
    "000000007108": "fe22617b02d85f3d180db14af3c300e95d259ae81035452a03f57b79e056fb78",
    "000000007278": "b088f1fc8e86da21084e8c98b7dc9406c0da61d74e740925af6a7adeda3c3f34",
    "000000007281": "57f3508e600d3370320487dde8665f208f11612a11caac0801c7f5fc19188ac3",
    "000000007386": "1bb19f0a2a950a944d178c921fddaddda6f133df6367e9f75ffcaafe2cd43f83",
    "000000007511": "105e70c573b87d7e3f034e1dc08cedcced39be4e52197139f52616c920dda3d7",
    "000000007574": "4f26c847c2f49574978e96733efaec720dd1d1ba95a8220d0de012b7317eed47",
    "000000007784": "2b472f58ae604977c3c288320aed7fa8823043758e1b40b9cede91921d7154eb",
    "000000007795": "adba86ef9a0dd1557c6cd23a4833d2cec71881a3979ceff831136c367e5f2507",
    "000000007816": "00132e042709fc7a66797374a42ff72d493a945d01afe2a48e5a526116a2aabe",
    "000000007818": "1bb3ef4577a7c11c55545532c7ec81fe1336105e5f1b9f38e47129eae9365187",
    "000000007888": "7c735e89b3699afc510053412ddea8e0370a1a5a2c9096713a5b255567747442",
    "000000007977": "0acb919d23df8f5126d63556668272ed26d53fa97fbad958958c2bbe8164d690",
    "000000007991": "63c6fae2e3defd4bc1c6f346806aef03eb11ccbd7c6bda3e479d1fbafd486db1",
    "000000008021": "235537407867a7b894e78b3aecb55b33b14b64cbb23ca376a00d34c62a1a63a6",
    "000000008211": "8a52b7177994a207b4f463d591c3c0f1ffd00b42dcdf17cc8f8984bfae17d110",
    "000000008277": "692fc5469af5fffdc0dac05e709a0ac1380dca32d4c57436903b122f3c3558dc",
    "000000008532": "237e72d5ffb557b5052b918c01a4fb15e6bb7dd2151bba9c0538de0024c941f9",
    "000000008629": "cb4972816eb01ebee8f3bde47a4993972951671e990dca797ad0fa9e0f385c11",
    "000000008690": "feca143d5e249b9fcaca7090c2400125ee19c7ad883c11fffe55e8bb451e7429",
    "000000008762": "8b8aa2412ac3502dbb4b8a7d7987359d4049cf70e7177748e907e3ddfa3211ce",
    "000000008844": "bd8133fe5862ea2b0b308db3c1d96b23012f2f667d43cb524d35ac1b710670a4",
    "000000008899": "5643dd54684df9750a16660fcb033e3acda2eff9c809cb69acb428b1184cadd1",
    "000000009378": "39ac6327aa1b887ff2ae06588576f497d642bbbf3682eb1eada4574087fcc1e5",
    "000000009400": "1a613f9b09db3b7bedb626af3e3951ac1709f6036d4e1405f6e8463816108222",
    "000000009448": "bd6ac1c94ef4599bd7f9d0f43ba0dab52b0afc34a872ee3acc83a20c8e8a6f3f",
    "000000009483": "c7e6e15f4db067c3e09ab8605759be9d850e2d5c45ea4dfb9cda8f5d85308ea4",
    "000000009590": "93cdd55e59cf7d32c481ca5b00b1b9c64f8b8f44020f64a97752a767fd7571ee",
    "000000009769": "f5e6d63081ba8fbb2a59770144d7c2350de6a1a8288e15565df7dd1bd87d85bf",
    "000000009772": "ab798f0ee5d1bed52376a5ee8bfbd973cb4c4fface481a9bc7a3ff5d9c57b4c7",
    "000000009891": "dc8292c102663e64a5fcf7477e8ab5f5289660099817e7d52f40e3918784dc0e",
}

# (relative path, sha256, upstream URL). A download whose hash differs is refused.
PINNED: list[tuple[str, str, str]] = [
    (MODEL_FP32, "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
     GH + "Kazuhito00/YOLOX-ONNX-TFLite-Sample/main/model/yolox_nano.onnx"),
    (MODEL_LABELS, "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84",
     GH + "Kazuhito00/YOLOX-ONNX-TFLite-Sample/main/model/coco_classes.txt"),
    ("data/video/road-overhead-640x360-24fps.mp4",
     "de7f9ec5a18f519036e3b155f3eea0800dc20badb41595452b80aa6dc6d4f11a",
     GH + "justadudewhohacks/opencv4nodejs/master/data/traffic.mp4"),
    ("data/video/pedestrians-800x450-24fps.mp4",
     "b28f4a1406716b7328b14adb8ddabf94e8d77191f030d2a250528f16f81ff2bb",
     GH + "justadudewhohacks/opencv4nodejs/master/data/people.mp4"),
    ("data/video/street-securitycam-640x360-10fps.mp4",
     "625552e2e8949072e434be9a56879e64e1d805b22bd65318978efc39c504ef19",
     GH + "cKuhn517/cvTrafficCam/master/traffic.mp4"),
    ("data/video/highway-640x360-30fps.mp4",
     "f7fc47fe77705718d997d8331f0de8351c1bd6ca0ecaf69c2c980db98e913a91",
     GH + "tuuguu556/carCounter/main/data/traffic.mp4"),
]
PINNED += [(f"{COCO_DIR}/{image_id}.jpg", sha, f"{COCO}{image_id}.jpg") for image_id, sha in COCO_PINS.items()]


def default_model_dir() -> Path | None:
    """The project's models/ when `edgecam model prepare` has written a manifest there, else None (FP32)."""
    here = PROJECT_ROOT / "models"
    return here if (here / "manifest.json").exists() else None


def candidate_roots() -> list[Path]:
    roots = []
    if os.environ.get("EDGECAM_ASSETS"):
        roots.append(Path(os.environ["EDGECAM_ASSETS"]))
    roots += [PROJECT_ROOT.parent / "shared", PROJECT_ROOT / "assets"]
    return roots


def find(relative: str) -> Path | None:
    """The first existing copy of an asset, or None."""
    for root in candidate_roots():
        path = root / relative
        if path.exists():
            return path
    return None


def require(relative: str) -> Path:
    path = find(relative)
    if path is None:
        raise FileNotFoundError(f"{relative} not found; run scripts/fetch-assets")
    return path


def video(name: str) -> Path | None:
    return find(f"{VIDEO_DIR}/{name}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_all(dest: Path, quiet: bool = False) -> int:
    """Make every pinned asset available; download only what no root has. Returns failures."""
    failures = 0
    for rel, sha, url in PINNED:
        have = find(rel)
        if have is not None:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                while block := resp.read(1 << 20):
                    out.write(block)
        except OSError as err:
            print(f"fetch-assets: {rel}: download failed: {err}", file=sys.stderr)
            tmp.unlink(missing_ok=True)
            failures += 1
            continue
        got = sha256_file(tmp)
        if got != sha:
            print(f"fetch-assets: {rel}: sha256 {got} does not match pinned {sha}; refused", file=sys.stderr)
            tmp.unlink(missing_ok=True)
            failures += 1
            continue
        os.replace(tmp, target)
        if not quiet:
            print(f"fetch-assets: {rel} ok")
    return failures


if __name__ == "__main__":
    quiet_flag = "--quiet" in sys.argv
    bad = fetch_all(PROJECT_ROOT / "assets", quiet=quiet_flag)
    if not quiet_flag or bad:
        print(f"fetch-assets: {len(PINNED) - bad}/{len(PINNED)} assets available")
    sys.exit(1 if bad else 0)
