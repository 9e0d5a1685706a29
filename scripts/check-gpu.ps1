<#
.SYNOPSIS
Can Docker on this machine give transcribed a working GPU?

.DESCRIPTION
The PowerShell twin of scripts/check-gpu. Runs `transcribed doctor` in the image with
--gpus all; the exit code is doctor's (0: the setup works), or docker's 125 when the
container could not even start. Further arguments go to doctor, e.g. --json.
#>
# Not an advanced script ([CmdletBinding()]) on purpose: that way --json lands in $args
# untouched instead of being rejected as an unknown parameter.
param()
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$image = if ($env:TRANSCRIBED_IMAGE) { $env:TRANSCRIBED_IMAGE } else { 'transcribed:latest' }
& docker run --rm --gpus all $image doctor @args
$rc = $LASTEXITCODE
if ($rc -eq 125) {
    Write-Warning @"
check-gpu: docker could not start the container (see its message above). Usually either
  - the image is missing: build it with scripts\docker-build.ps1, or set TRANSCRIBED_IMAGE; or
  - Docker Desktop cannot hand out GPUs: use the WSL 2 backend, install a current NVIDIA
    Windows driver (it provides CUDA inside WSL 2), and check that 'nvidia-smi' works in a
    WSL shell.
"@
}
exit $rc
