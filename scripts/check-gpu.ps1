<#
.SYNOPSIS
Can Docker on this machine give transcribed a working GPU?

.DESCRIPTION
The PowerShell twin of scripts/check-gpu. Runs `transcribed doctor` in the image with
--gpus all and passes its report through. Further arguments go to doctor, e.g. --json.
Exit code: 0 the GPU works (doctor transcribed its sample clip on it); 4 transcribed works,
but only on the CPU (the report's warn lines say why); 1 the setup cannot work at all (its
FAIL lines say what to fix); 125 docker could not even start the container.
#>
# Not an advanced script ([CmdletBinding()]) on purpose: that way --json lands in $args
# untouched instead of being rejected as an unknown parameter.
param()
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$image = if ($env:TRANSCRIBED_IMAGE) { $env:TRANSCRIBED_IMAGE } else { 'transcribed:latest' }
& docker run --rm --gpus all $image doctor @args | Tee-Object -Variable report
$rc = $LASTEXITCODE
if ($rc -eq 125) {
    Write-Warning @"
check-gpu: docker could not start the container (see its message above). Usually either
  - the image is missing: build it with scripts\docker-build.ps1, or set TRANSCRIBED_IMAGE; or
  - Docker Desktop cannot hand out GPUs: use the WSL 2 backend, install a current NVIDIA
    Windows driver (it provides CUDA inside WSL 2), and check that 'nvidia-smi' works in a
    WSL shell.
"@
} elseif ($rc -eq 0 -and -not (@($report) -match '^READY: transcribes on the GPU|"device": "cuda"')) {
    Write-Warning ("check-gpu: transcribed works in this container, but on the CPU, not the " +
                   "GPU (the warn lines above say why).")
    $rc = 4
}
exit $rc
