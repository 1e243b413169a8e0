#!/bin/sh
# Installs the mcp-proxy binary for this OS and CPU from a release, after checking it against the
# release's SHA256SUMS:
#
#   curl -fsSL https://github.com/mcp-proxy/mcp-proxy/releases/latest/download/install.sh | sh
#
# Environment (all optional):
#   MCP_PROXY_VERSION        the version to install, 1.2.3 or v1.2.3 (default: the latest release)
#   MCP_PROXY_INSTALL_DIR    where to put mcp-proxy (default: ~/.local/bin, created if missing)
#   MCP_PROXY_DOWNLOAD_BASE  the releases URL to download from, e.g. a mirror (default: below)
#   MCP_PROXY_OS, MCP_PROXY_ARCH
#                            for testing only: used instead of `uname -s` and `uname -m`
#
# Assets are fetched from $MCP_PROXY_DOWNLOAD_BASE/latest/download/<file>, or with a version from
# $MCP_PROXY_DOWNLOAD_BASE/download/v<version>/<file>: mcp-proxy-<deno target> and SHA256SUMS.
#
# POSIX sh. It never reads stdin (which is the script itself under `curl … | sh`), and everything runs
# from `main` on the last line, so a download cut short runs nothing.

DEFAULT_DOWNLOAD_BASE="https://github.com/mcp-proxy/mcp-proxy/releases"

set -eu
unset CDPATH

say() {
  printf '%s\n' "$*" >&2
}

fail() {
  printf 'mcp-proxy install: error: %s\n' "$*" >&2
  exit 1
}

# Sets `target` (a `deno compile --target` value) and `os`.
detect_target() {
  os=${MCP_PROXY_OS:-$(uname -s)}
  arch=${MCP_PROXY_ARCH:-$(uname -m)}
  case $os in
    Linux) system=unknown-linux-gnu ;;
    Darwin)
      system=apple-darwin
      # An x86_64 shell on Apple silicon runs under Rosetta: the native binary is the better choice.
      if [ -z "${MCP_PROXY_ARCH:-}" ] && [ "$arch" = x86_64 ] &&
        [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
        arch=arm64
      fi
      ;;
    MINGW* | MSYS* | CYGWIN* | Windows_NT)
      fail "this script does not install on Windows ($os): download mcp-proxy-x86_64-pc-windows-msvc.exe" \
        "(or the aarch64 one) and SHA256SUMS from $base"
      ;;
    *) fail "unsupported operating system: $os (mcp-proxy binaries exist for Linux and Darwin (macOS))" ;;
  esac
  case $arch in
    x86_64 | amd64) cpu=x86_64 ;;
    aarch64 | arm64) cpu=aarch64 ;;
    *) fail "unsupported CPU architecture: $arch (mcp-proxy binaries exist for x86_64 (amd64) and aarch64 (arm64))" ;;
  esac
  target=$cpu-$system
}

# Sets `release_url` (the directory of the release's assets) and `release` (its description).
choose_release() {
  version=${MCP_PROXY_VERSION:-}
  version=${version#v}
  if [ -z "${MCP_PROXY_VERSION:-}" ]; then
    release_url=$base/latest/download
    release="the latest release"
    return
  fi
  case $version in
    *[!0-9A-Za-z.+-]* | "" | [!0-9]*)
      fail "MCP_PROXY_VERSION must be a version like 1.2.3 or v1.2.3, not '$MCP_PROXY_VERSION'"
      ;;
  esac
  release_url=$base/download/v$version
  release="version $version (release v$version)"
}

choose_tools() {
  if command -v curl >/dev/null 2>&1; then
    downloader=curl
  elif command -v wget >/dev/null 2>&1; then
    downloader=wget
  else
    fail "neither curl nor wget is installed: install one of them and run this again"
  fi
  if command -v sha256sum >/dev/null 2>&1; then
    hasher=sha256sum
  elif command -v shasum >/dev/null 2>&1; then
    hasher=shasum
  else
    fail "neither sha256sum nor shasum is installed: they are needed to verify the download"
  fi
}

# download URL FILE
download() {
  if [ "$downloader" = curl ]; then
    curl --fail --silent --show-error --location --retry 2 --output "$2" "$1"
  else
    wget -q -O "$2" "$1"
  fi
}

# Prints the lowercase SHA-256 of FILE.
sha256_of() {
  if [ "$hasher" = sha256sum ]; then
    sha256sum "$1"
  else
    shasum -a 256 "$1"
  fi | awk '{ print tolower($1) }'
}

# Prints the checksum that SHA256SUMS gives for NAME ("HASH  NAME" or "HASH *NAME"), or nothing.
expected_sha256() {
  awk -v name="$2" '{ sub(/\r$/, "") } $2 == name || $2 == "*" name { print tolower($1); exit }' "$1"
}

json_string() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

print_instructions() {
  printf '\nmcp-proxy is installed: %s\n' "$dest"
  if [ -n "$installed_version" ]; then
    printf '%s\n' "$installed_version"
  fi
  case ":${PATH:-}:" in
    *":$dir:"* | *":$dir/:"*) ;;
    *)
      printf '\n%s is not on your PATH. To run mcp-proxy by name, add this line to your shell profile\n' "$dir"
      printf '(~/.profile, ~/.bashrc or ~/.zshrc) and open a new shell:\n\n'
      printf '  export PATH="%s:%s"\n' "$dir" "\$PATH"
      ;;
  esac
  printf '\nClaude Desktop: to use a remote MCP server through mcp-proxy (client mode), add this to\n'
  if [ "$os" = Darwin ]; then
    printf '%s/Library/Application Support/Claude/claude_desktop_config.json:\n\n' "${HOME:-}"
  else
    printf 'claude_desktop_config.json:\n\n'
  fi
  printf '{\n  "mcpServers": {\n    "remote-example": {\n'
  printf '      "command": %s,\n' "$(json_string "$dest")"
  printf '      "args": ["http://example.com:8080/sse"]\n'
  printf '    }\n  }\n}\n'
  printf '\nReplace the URL with your server'"'"'s: .../sse for SSE, .../mcp for Streamable HTTP. The command is\n'
  printf 'an absolute path because Claude Desktop starts programs with a short PATH. For server mode and the\n'
  printf 'other options, see: %s --help\n' "$dest"
}

main() {
  base=${MCP_PROXY_DOWNLOAD_BASE:-$DEFAULT_DOWNLOAD_BASE}
  base=${base%/}
  detect_target
  choose_release
  choose_tools

  if [ -n "${MCP_PROXY_INSTALL_DIR:-}" ]; then
    dir=$MCP_PROXY_INSTALL_DIR
  elif [ -n "${HOME:-}" ]; then
    dir=$HOME/.local/bin
  else
    fail "HOME is not set: set MCP_PROXY_INSTALL_DIR to the directory to install into"
  fi

  asset=mcp-proxy-$target
  tmp=$(mktemp -d 2>/dev/null || mktemp -d -t mcp-proxy) || fail "cannot create a temporary directory"
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 1' HUP INT TERM

  say "mcp-proxy install: $asset, $release, from $release_url"
  if ! download "$release_url/$asset" "$tmp/$asset"; then
    fail "cannot download $release_url/$asset: $release does not exist or has no asset for $target"
  fi
  if ! download "$release_url/SHA256SUMS" "$tmp/SHA256SUMS"; then
    rm -f "$tmp/$asset"
    fail "cannot download $release_url/SHA256SUMS ($release): refusing to install an unverified download"
  fi

  expected=$(expected_sha256 "$tmp/SHA256SUMS" "$asset")
  actual=$(sha256_of "$tmp/$asset")
  if [ -z "$expected" ]; then
    rm -f "$tmp/$asset"
    fail "SHA256SUMS of $release has no line for $asset: refusing to install an unverified download"
  fi
  if [ "$expected" != "$actual" ]; then
    rm -f "$tmp/$asset"
    fail "checksum mismatch for $asset (SHA256SUMS says $expected, the download is $actual):" \
      "refusing to install it"
  fi
  say "mcp-proxy install: checksum verified ($hasher)"

  mkdir -p "$dir" || fail "cannot create the directory $dir"
  dir=$(cd -- "$dir" && pwd) || fail "cannot enter the directory $dir"
  dest=$dir/mcp-proxy
  staged=$dir/.mcp-proxy.install.$$
  if ! { cp "$tmp/$asset" "$staged" && chmod 755 "$staged" && mv -f "$staged" "$dest"; }; then
    rm -f "$staged"
    fail "cannot write $dest"
  fi

  if ! installed_version=$("$dest" --version </dev/null 2>/dev/null); then
    installed_version=
    say "mcp-proxy install: warning: $dest --version failed; the binary may not run on this system"
  fi
  print_instructions
}

main "$@"
