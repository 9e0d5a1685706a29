<#
.SYNOPSIS
Build the transcribed image: CUDA 12.8 + cuDNN 9 by default, or CPU-only with -Cpu.

.DESCRIPTION
The PowerShell twin of scripts/docker-build, for Docker Desktop on Windows.
  scripts\docker-build.ps1            -> transcribed:latest (GPU)
  scripts\docker-build.ps1 -Cpu       -> transcribed:cpu
  scripts\docker-build.ps1 --pull     further arguments go to `docker build` as they are
$env:TRANSCRIBED_IMAGE overrides the tag.
#>
# Not an advanced script ([CmdletBinding()]) on purpose: that way arguments such as --pull
# land in $args untouched instead of being rejected as unknown parameters.
param([switch]$Cpu)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$root = Split-Path -Parent $PSScriptRoot
$buildArgs = @()
if ($Cpu) {
    $image = if ($env:TRANSCRIBED_IMAGE) { $env:TRANSCRIBED_IMAGE } else { 'transcribed:cpu' }
    $buildArgs = @('--build-arg', 'BASE_IMAGE=ubuntu:24.04',
                   '--build-arg', 'TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu')
} else {
    $image = if ($env:TRANSCRIBED_IMAGE) { $env:TRANSCRIBED_IMAGE } else { 'transcribed:latest' }
}

& docker build --tag $image @buildArgs @args $root
exit $LASTEXITCODE
