#!/usr/bin/env python3
"""Download tiny Shakespeare (1.1 MB, the standard char-rnn benchmark) into data/.

For users with internet access; charrnn itself and its tests never download anything.

    python scripts/fetch_tinyshakespeare.py          # -> data/tinyshakespeare.txt
    charrnn train data/tinyshakespeare.txt
"""

from __future__ import annotations

import hashlib
import sys
import urllib.request
from pathlib import Path

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DESTINATION = Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt"


def main() -> int:
    if DESTINATION.exists():
        print(f"{DESTINATION} is already there")
        return 0
    print(f"downloading {URL}")
    try:
        with urllib.request.urlopen(URL, timeout=60) as response:
            data = response.read()
    except OSError as error:
        print(f"download failed: {error}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"download failed: unexpected contents (sha256 {digest})", file=sys.stderr)
        return 1
    DESTINATION.parent.mkdir(parents=True, exist_ok=True)
    DESTINATION.write_bytes(data)
    print(f"saved {len(data):,} bytes to {DESTINATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
