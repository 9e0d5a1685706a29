<#
.SYNOPSIS
Run transcribed in Docker on .\data, in the foreground; Ctrl-C stops it gracefully.

.DESCRIPTION
The PowerShell twin of scripts/docker-run, for Docker Desktop on Windows (WSL 2 backend,
which passes an NVIDIA GPU through with --gpus all).
  scripts\docker-run.ps1                          the daemon on the GPU
  scripts\docker-run.ps1 -Cpu                     the daemon from the CPU image, no GPU
  scripts\docker-run.ps1 -Detach                  in the background, restarted unless stopped
  scripts\docker-run.ps1 transcribe /data/x.wav   any other transcribed command, once
Drop files into data\inbox; transcripts appear in data\outbox. Environment:
TRANSCRIBED_IMAGE (image), TRANSCRIBED_DATA (host folder, default .\data),
TRANSCRIBED_MODELS (model cache volume, default transcribed-models).
Files copied in from Windows may raise no change event inside the container; the daemon's
periodic rescan (watch.rescan_seconds) picks them up all the same.
#>
# Not an advanced script ([CmdletBinding()]) on purpose: that way a command's own options
# (transcribe --out ...) land in $args untouched instead of being rejected as unknown parameters.
param([switch]$Cpu, [switch]$Detach)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$root = Split-Path -Parent $PSScriptRoot
$image = if ($env:TRANSCRIBED_IMAGE) { $env:TRANSCRIBED_IMAGE } elseif ($Cpu) { 'transcribed:cpu' } else { 'transcribed:latest' }
$data = if ($env:TRANSCRIBED_DATA) { $env:TRANSCRIBED_DATA } else { Join-Path $root 'data' }
$models = if ($env:TRANSCRIBED_MODELS) { $env:TRANSCRIBED_MODELS } else { 'transcribed-models' }

foreach ($folder in 'inbox', 'outbox', 'done', 'failed', 'state') {
    New-Item -ItemType Directory -Force -Path (Join-Path $data $folder) | Out-Null
}
$data = (Resolve-Path $data).Path

# --mount rather than -v: a Windows path's drive colon cannot be mistaken for a separator.
$opts = @('--init', '--stop-timeout', '45',
          '--mount', "type=bind,source=$data,target=/data",
          '--mount', "type=volume,source=$models,target=/models")
if (-not $Cpu) { $opts += @('--gpus', 'all') }
if ($Detach) { $opts += @('--detach', '--restart', 'unless-stopped') } else { $opts += '--rm' }
# The daemon (no command given) gets a name and the metrics port; a one-off command gets
# neither, so it can run beside the daemon.
if ($args.Count -eq 0) {
    $opts += @('--name', 'transcribed', '--publish', '127.0.0.1:9108:9108')
}

& docker run @opts $image @args
exit $LASTEXITCODE
