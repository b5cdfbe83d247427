"""Captioning's video stage at scale: frame decoding in parallel and feature extraction on every local device.

The clips are the real MSVD sample clips (../shared/data/msvd/sample_clips, .avi, 320x240 up to 1280x720) linked
under distinct names until there are --clips of them; --frames frames are sampled per clip at the backbone's
224x224 (the full preset's frames). Each figure runs in its own child process (a process fixes its devices when
TensorFlow starts), on a fresh cache folder:

1. decode: `pipelines.captioning.features.decoded_videos` (PyAV in a tf.data map with parallel calls) against
   the same clips read one after another with `read_frames`: clips/s and frames/s.
2. extract: `pipelines.captioning.features.extract` (parallel decoding, the backbone on every local device,
   one .npy per clip written atomically) with --backbone (random weights, `none`) on 1 device, then on
   --devices logical CPU devices (a GPU machine would list its GPUs): clips/s, frames/s and frames/s per device.

Run:
    python benchmarks/video_at_scale.py                   # 88 clips x 16 frames, mobilenet_v2
    python benchmarks/video_at_scale.py --clips 22 --frames 8
"""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(_common.default_data_dir("msvd") / "sample_clips"),
                   help="folder of video clips to link (default: %(default)s)")
    p.add_argument("--clips", type=int, default=88, help="linked clips (default 88)")
    p.add_argument("--frames", type=int, default=16, help="frames sampled per clip (default 16)")
    p.add_argument("--backbone", default="mobilenet_v2", help="features.backbone (default mobilenet_v2)")
    p.add_argument("--devices", type=int, default=2, help="logical CPU devices of the multi-device run (default 2)")
    p.add_argument("--work-dir", default="/tmp/lstm-apps-video-at-scale", help="default: %(default)s")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def linked_clips(source, clips, folder):
    originals = sorted(p for p in source.iterdir() if p.suffix in (".avi", ".mp4", ".webm"))
    folder.mkdir(parents=True, exist_ok=True)
    videos = {}
    for n in range(clips):
        original = originals[n % len(originals)]
        link = folder / f"{original.stem}-r{n // len(originals)}{original.suffix}"
        if not link.exists():
            link.symlink_to(original)
        videos[link.stem] = link
    return videos


def child(args):
    """One measurement in this process: prints one JSON line."""
    kind, devices = args.child.split(":")
    devices = int(devices)
    import tensorflow as tf

    if devices > 1:  # before the runtime starts
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    from lstm_apps.inputs.video import read_frames
    from pipelines.captioning import features

    videos = linked_clips(Path(args.source), args.clips, Path(args.work_dir) / "clips")
    size = features.BACKBONES[args.backbone].size
    started = time.perf_counter()
    if kind == "serial":
        for path in videos.values():
            read_frames(path, args.frames, size=size)
    elif kind == "parallel":
        for _ in features.decoded_videos(videos, args.frames, size):
            pass
    else:
        cache = Path(args.work_dir) / f"features-{devices}"
        shutil.rmtree(cache, ignore_errors=True)
        extractor_devices = features.local_devices()
        features.extract(videos, cache, args.backbone, "none", args.frames, devices=extractor_devices)
        assert len(list(cache.glob("*.npy"))) == len(videos)
    seconds = time.perf_counter() - started
    print(json.dumps({"kind": kind, "devices": devices, "seconds": seconds}), flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    _common.require_dir(args.source, "--source")
    machine = _common.machine_info()
    _common.print_machine(machine)
    runs = [("serial", 1), ("parallel", 1), ("extract", 1), ("extract", args.devices)]
    rows = []
    for kind, devices in runs:
        command = [sys.executable, __file__, *(argv or sys.argv[1:]), "--child", f"{kind}:{devices}"]
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=_common.REPO).stdout
        result = json.loads(out.strip().splitlines()[-1])
        clips_per_s = args.clips / result["seconds"]
        stage = {"serial": "decode, one clip after another (read_frames)",
                 "parallel": "decode, tf.data map with parallel calls",
                 "extract": f"extract ({args.backbone}) on {devices} device{'s' if devices > 1 else ''}"}[kind]
        rows.append({"stage": stage, "clips_per_s": clips_per_s, "frames_per_s": clips_per_s * args.frames,
                     "frames_per_s_per_device": clips_per_s * args.frames / devices})
        print(f"{stage}: {clips_per_s:.2f} clips/s", flush=True)
    _common.report("video_at_scale", f"video decoding and feature extraction, {args.clips} clips x {args.frames} "
                   f"frames", rows, [("stage", "stage", None), ("clips_per_s", "clips/s", ".2f"),
                                     ("frames_per_s", "frames/s", ".1f"),
                                     ("frames_per_s_per_device", "frames/s per device", ".1f")],
                   machine, vars(args), ["logical CPU devices share the same 2 cores: they show that extraction "
                                         "spreads over devices, not a speedup a second GPU would give",
                                         _common.NOISE_NOTE])


if __name__ == "__main__":
    main()
