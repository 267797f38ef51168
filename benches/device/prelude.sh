# Sourced first by the device scripts, from the repository root: installs the Vulkan loader
# from .gl/, points it at the NVIDIA driver, and enters the carried bench folder .bench/.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench

# Unpacks the carried binaries NAME.xz given as arguments (e.g. `unpack kiln kiln_main`).
unpack() {
  for b in "$@"; do xz -d -k -f $b.xz; chmod +x $b; done
}

# The language-model comparisons' common setup: llama.cpp's Vulkan build into /tmp/llama, the
# random GGUFs of ggufs.sh, and the compile (K) and bench (B) options they all use.
llm_setup() {
  mkdir -p /tmp/llama && tar xJf llama.tar.xz -C /tmp
  source ggufs.sh
  K="--context 1024 --target desktop -q"
  B="--prompt-tokens 512 --gen-tokens 128 --iters 3 -q"
}
