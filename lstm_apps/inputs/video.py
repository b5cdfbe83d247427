"""Video files -> frames: decoded with PyAV (FFmpeg: .avi, .mp4, .webm; H.264, MPEG-4, VP8/9, ...), `num_frames`
sampled uniformly over the clip, resized, as uint8 RGB [num_frames, height, width, 3].

A clip shorter than `num_frames` frames is sampled with repetition (each frame is used about num_frames / length
times, in order), as the MSVD feature sets do for short clips.
"""
from pathlib import Path

import numpy as np

from lstm_apps.errors import DataError

VIDEO_SUFFIXES = (".avi", ".mp4", ".webm", ".mkv", ".mov")


def sample_indices(total, num_frames):
    """Indices of `num_frames` frames spread uniformly over `total` (the middle of each of num_frames equal
    segments); repeats frames when total < num_frames.

    >>> sample_indices(10, 5).tolist()
    [1, 3, 5, 7, 9]
    >>> sample_indices(2, 4).tolist()
    [0, 0, 1, 1]
    """
    if total < 1:
        raise ValueError("sample_indices: a clip needs at least one frame")
    return np.minimum(((np.arange(num_frames) + 0.5) * total / num_frames).astype(np.int64), total - 1)


def read_frames(path, num_frames, size=None):
    """`num_frames` RGB frames of a video file, uniformly sampled, as uint8 [num_frames, H, W, 3]; `size`
    (height, width) resizes them (FFmpeg's scaler). An unreadable file or one without video frames is a DataError
    naming it.

    Only the sampled frames are converted to RGB and resized (most of the cost): the frame count comes from the
    container; where it is missing or wrong, a second pass converts every frame and samples from those."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a video file ({', '.join(VIDEO_SUFFIXES)})")
    sampled = _decode(path, num_frames, size, trust_count=True)
    return sampled if sampled is not None else _decode(path, num_frames, size, trust_count=False)


def _decode(path, num_frames, size, trust_count):
    """One decoding pass. Trusting the container's frame count (when it has one), only the sampled frames are
    converted, and None is returned if the count was wrong; otherwise every frame is converted, then sampled."""
    import av

    height, width = size if size else (None, None)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream; expected a video file ({', '.join(VIDEO_SUFFIXES)})")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            total = stream.frames if trust_count else 0
            wanted = sample_indices(total, num_frames) if total > 0 else None
            keep = None if wanted is None else set(wanted.tolist())
            converted, seen = {}, 0
            for index, frame in enumerate(container.decode(stream)):
                seen = index + 1
                if keep is None or index in keep:
                    converted[index] = frame.to_ndarray(format="rgb24", width=width, height=height)
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable video ({str(error).splitlines()[0][:120]}); expected a video "
                        f"file ({', '.join(VIDEO_SUFFIXES)})") from None
    if not seen:
        raise DataError(f"{path}: no decodable video frames; expected a non-empty video")
    if wanted is not None:
        return np.stack([converted[i] for i in wanted]) if seen == total else None
    return np.stack([converted[i] for i in sample_indices(seen, num_frames)])


def write_video(path, frames, fps=10, codec=None):
    """Encode uint8 RGB frames [T, H, W, 3] (H and W even) into a video file; the codec follows the suffix
    (.mp4: H.264, .avi: MPEG-4 Part 2, .webm: VP9) unless given. Written beside and renamed (never half a file)."""
    import av

    path = Path(path)
    codec = codec or {".mp4": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9"}[path.suffix]
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = 2_000_000
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path
