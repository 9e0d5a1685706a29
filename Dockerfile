# syntax=docker/dockerfile:1
# transcribed in a container: a resident WhisperX model watching /data/inbox.
#
#   GPU (default):  docker build -t transcribed .
#   CPU only:       docker build -t transcribed:cpu --build-arg BASE_IMAGE=ubuntu:24.04 \
#                     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
#   podman:         add --format docker (the OCI format has no HEALTHCHECK; podman drops it).
#   (scripts/docker-build and scripts/docker-build.ps1 do exactly this.)
#
# Why this base, the small CUDA one: whisperx 3.8.6 pins torch 2.8.0, whose PyPI build targets
# CUDA 12.8 and installs cuBLAS, cuDNN 9 and the rest as pip wheels (nvidia-cublas-cu12,
# nvidia-cudnn-cu12, ...) under site-packages/nvidia/*/lib, 4.1 GB measured. torch finds
# them by its own RPATH. CTranslate2, which runs the Whisper model, loads its CUDA libraries by
# name from the linker path instead: measured on the 4.8.5 wheel (`strings` on
# libctranslate2.so), that is libcublas.so.12 alone (cudart is linked in statically,
# libcuda.so.1 comes from the driver). So the image puts torch's cuBLAS and cuDNN wheel folders
# on LD_LIBRARY_PATH (cuDNN too: a CTranslate2 built with cuDNN loads libcudnn*.so.9 the same
# way, and `transcribed doctor` checks both), and the base needs no CUDA libraries of its own. A `cudnn-runtime` base would
# carry the same cuBLAS, cuDNN, cuFFT, cuRAND, cuSOLVER, cuSPARSE and NCCL a second time (3.4 GB
# at the wheels' sizes); `base` brings only the CUDA runtime and the variables
# (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES) the NVIDIA Container Toolkit acts on.
# The versions agree by construction: the wheels are the ones torch 2.8.0 was built against
# (CUDA 12.8, cuDNN 9.10), and CTranslate2 4.x is built for CUDA 12 and cuDNN 9.
# The host needs an NVIDIA driver for CUDA 12.8 (>= 570) and the NVIDIA Container Toolkit.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04
FROM ${BASE_IMAGE}

# CPU builds: an extra package index for torch, e.g. https://download.pytorch.org/whl/cpu.
# Its torch 2.8.0+cpu wheels satisfy whisperx's pin and skip the ~3 GB of CUDA wheels.
ARG TORCH_INDEX_URL=""

# python3 + venv to build the venv (Ubuntu 24.04: Python 3.12), make for `make install`.
# No ffmpeg: the daemon decodes every file with PyAV, whose wheel carries its own FFmpeg
# libraries, and hands whisperx, pyannote and the aligner decoded samples, so neither
# whisperx.load_audio (which runs the ffmpeg command) nor torchcodec is ever used. That keeps
# about 250 MB of codecs and X11 libraries out of the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates make python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
# DL3008 (pin apt versions) is ignored on purpose: Ubuntu's archive keeps only the latest
# build of each package, so a pinned version stops building at the next security update.
# The base image tag already fixes the release.

WORKDIR /src
# LICENSE: pyproject's license-files names it (setuptools warns now, fails from 2027).
COPY Makefile pyproject.toml README.md LICENSE ./
COPY daemon/ daemon/

# Install exactly as the Makefile does for everyone else: a non-editable install without
# test extras, into its own venv, with the object-store client (boto3, nats-py: pure Python),
# so one image serves the shared folder and the object-store intake (docs/scale.md). The pip cache lives in a BuildKit cache mount, so
# rebuilds after a code change do not download torch again, and the image does not keep it.
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ -n "$TORCH_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL"; fi \
    && make install VENV=/opt/transcribed EDITABLE= EXTRAS='[objectstore]' \
    && /opt/transcribed/bin/transcribed --help > /dev/null \
    && ln -s "$(/opt/transcribed/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/nvidia" \
        /opt/transcribed/nvidia \
    && rm -rf build daemon/*.egg-info
# /opt/transcribed/nvidia: torch's CUDA wheels whatever the Python version (3.12 on Ubuntu
# 24.04, 3.11 on Debian 12); a dangling link in a CPU-only build, where there are none.

# A fixed non-root uid, so that volumes and Kubernetes' runAsUser agree on who owns files.
# /models is world-writable (with the sticky bit, like /tmp) so the model cache also works
# under `docker run --user "$(id -u):$(id -g)"`, which scripts/docker-run uses so that files
# in a bind-mounted ./data belong to you.
RUN groupadd --system --gid 10001 transcribed \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/transcribed \
        --shell /usr/sbin/nologin transcribed \
    && mkdir -p /data/inbox /data/outbox /data/done /data/failed /data/state /models \
    && chown -R 10001:10001 /data /models \
    && chmod 1777 /models

COPY config/docker.yaml /etc/transcribed/transcribed.yaml

# HF_HOME, TORCH_HOME and XDG_CACHE_HOME keep every download (alignment and VAD models
# included) in the /models volume, so it happens once, not on every container start.
# TRANSCRIBED_CONFIG lets `transcribed status` (the health check) find the same config.
# LD_LIBRARY_PATH: CTranslate2 finds cuBLAS (and cuDNN) in torch's wheels, see the top.
ENV PATH=/opt/transcribed/bin:$PATH \
    LD_LIBRARY_PATH=/opt/transcribed/nvidia/cublas/lib:/opt/transcribed/nvidia/cudnn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/models/huggingface \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TORCH_HOME=/models/torch \
    XDG_CACHE_HOME=/models/cache \
    PYANNOTE_METRICS_ENABLED=false \
    TRANSCRIBED_CONFIG=/etc/transcribed/transcribed.yaml

USER 10001:10001
WORKDIR /data
VOLUME ["/data", "/models"]
# /metrics and /healthz (metrics.listen in config/docker.yaml).
EXPOSE 9108

# Healthy = model loaded and the consumer loop's heartbeat fresh. The start period covers
# loading (and, for a model not yet in /models, downloading) before the first check counts.
HEALTHCHECK --interval=30s --timeout=20s --start-period=10m --retries=3 \
    CMD ["transcribed", "status", "--check"]

# Exec form, no shell in between, so `docker stop`'s SIGTERM reaches the daemon itself.
# SIGTERM is graceful (the current job finishes or goes back), so no STOPSIGNAL is needed.
ENTRYPOINT ["transcribed"]
CMD ["run", "--config", "/etc/transcribed/transcribed.yaml"]
