"""X keysyms as text: which character (or visible mark) a key press types.

A browser's noVNC sends each character as a keysym: Latin-1 as its code point, a character
with a legacy X keysym (Latin-2..4, Kana, Arabic, Cyrillic, Greek, typographic signs, …) as
that keysym, any other as ``0x01000000 + code point``. :func:`character` undoes exactly
that mapping (:data:`_LEGACY` is noVNC's ``core/input/keysymdef.js`` reversed; a test checks
it still is). Keys that type no character but matter to a reader (Return, Tab, BackSpace,
Delete, the arrows) have a visible mark; modifiers are named for chords such as Ctrl+C.

No I/O: numbers in, text out.
"""

from __future__ import annotations

from typing import Final

#: Keysyms that type a mark rather than a character: what a reader sees for them.
MARKS: Final = {
    0xFF0D: "⏎", 0xFF8D: "⏎",  # Return, KP_Enter
    0xFF09: "⇥", 0xFE20: "⇤",  # Tab, ISO_Left_Tab (Shift+Tab)
    0xFF08: "⌫", 0xFFFF: "⌦", 0xFF9F: "⌦",  # BackSpace, Delete, KP_Delete
    0xFF1B: "⎋",  # Escape
    0xFF51: "←", 0xFF52: "↑", 0xFF53: "→", 0xFF54: "↓",
    0xFF96: "←", 0xFF97: "↑", 0xFF98: "→", 0xFF99: "↓",  # the keypad's arrows
}
#: The Japanese keyboard's input-method keys (they type nothing themselves), by their key-cap labels:
#: a reader sees where the operator converted or switched modes on the desktop's input method.
JAPANESE_KEYS: Final = {
    0xFF21: "漢字", 0xFF22: "無変換", 0xFF23: "変換", 0xFF24: "ローマ字", 0xFF25: "ひらがな", 0xFF26: "カタカナ",
    0xFF27: "カタカナ/ひらがな", 0xFF28: "全角", 0xFF29: "半角", 0xFF2A: "半角/全角", 0xFF30: "英数",
}
#: Keysyms of keys that end a line.
LINE_ENDS: Final = frozenset({0xFF0D, 0xFF8D})
#: Modifiers that make a key a shortcut (Ctrl+C) rather than text, by the name a reader sees.
CHORD_MODIFIERS: Final = {
    0xFFE3: "Ctrl", 0xFFE4: "Ctrl", 0xFFE7: "Meta", 0xFFE8: "Meta",
    0xFFE9: "Alt", 0xFFEA: "Alt", 0xFFEB: "Super", 0xFFEC: "Super", 0xFFED: "Hyper", 0xFFEE: "Hyper",
}
#: Keysyms that only change what other keys type, or nothing at all: never shown on their own.
_SILENT_MODIFIERS: Final = frozenset({0xFFE1, 0xFFE2, 0xFFE5, 0xFFE6, 0xFE03, 0xFF7E})  # Shift, locks, AltGr
#: The keypad's characters (NumLock on), keysym → character.
_KEYPAD: Final = {0xFF80: " ", 0xFFAA: "*", 0xFFAB: "+", 0xFFAC: ",", 0xFFAD: "-", 0xFFAE: ".", 0xFFAF: "/",
                  0xFFBD: "=", **{0xFFB0 + digit: str(digit) for digit in range(10)}}
_UNICODE_BASE: Final = 0x01000000
_MAX_CODE_POINT: Final = 0x10FFFF

# noVNC's keysymdef.js, reversed: "keysym:code point" in hex.
_LEGACY_TABLE = """
1a1:104 1a2:2d8 1a3:141 1a5:13d 1a6:15a 1a9:160 1aa:15e 1ab:164 1ac:179 1ae:17d 1af:17b 1b1:105
1b2:2db 1b3:142 1b5:13e 1b6:15b 1b7:2c7 1b9:161 1ba:15f 1bb:165 1bc:17a 1bd:2dd 1be:17e 1bf:17c
1c0:154 1c3:102 1c5:139 1c6:106 1c8:10c 1ca:118 1cc:11a 1cf:10e 1d0:110 1d1:143 1d2:147 1d5:150
1d8:158 1d9:16e 1db:170 1de:162 1e0:155 1e3:103 1e5:13a 1e6:107 1e8:10d 1ea:119 1ec:11b 1ef:10f
1f0:111 1f1:144 1f2:148 1f5:151 1f8:159 1f9:16f 1fb:171 1fe:163 1ff:2d9 2a1:126 2a6:124 2a9:130
2ab:11e 2ac:134 2b1:127 2b6:125 2b9:131 2bb:11f 2bc:135 2c5:10a 2c6:108 2d5:120 2d8:11c 2dd:16c
2de:15c 2e5:10b 2e6:109 2f5:121 2f8:11d 2fd:16d 2fe:15d 3a2:138 3a3:156 3a5:128 3a6:13b 3aa:112
3ab:122 3ac:166 3b3:157 3b5:129 3b6:13c 3ba:113 3bb:123 3bc:167 3bd:14a 3bf:14b 3c0:100 3c7:12e
3cc:116 3cf:12a 3d1:145 3d2:14c 3d3:136 3d9:172 3dd:168 3de:16a 3e0:101 3e7:12f 3ec:117 3ef:12b
3f1:146 3f2:14d 3f3:137 3f9:173 3fd:169 3fe:16b 47e:203e 4a1:3002 4a2:300c 4a3:300d 4a4:3001
4a5:30fb 4a6:30f2 4a7:30a1 4a8:30a3 4a9:30a5 4aa:30a7 4ab:30a9 4ac:30e3 4ad:30e5 4ae:30e7 4af:30c3
4b0:30fc 4b1:30a2 4b2:30a4 4b3:30a6 4b4:30a8 4b5:30aa 4b6:30ab 4b7:30ad 4b8:30af 4b9:30b1 4ba:30b3
4bb:30b5 4bc:30b7 4bd:30b9 4be:30bb 4bf:30bd 4c0:30bf 4c1:30c1 4c2:30c4 4c3:30c6 4c4:30c8 4c5:30ca
4c6:30cb 4c7:30cc 4c8:30cd 4c9:30ce 4ca:30cf 4cb:30d2 4cc:30d5 4cd:30d8 4ce:30db 4cf:30de 4d0:30df
4d1:30e0 4d2:30e1 4d3:30e2 4d4:30e4 4d5:30e6 4d6:30e8 4d7:30e9 4d8:30ea 4d9:30eb 4da:30ec 4db:30ed
4dc:30ef 4dd:30f3 4de:309b 4df:309c 5ac:60c 5bb:61b 5bf:61f 5c1:621 5c2:622 5c3:623 5c4:624 5c5:625
5c6:626 5c7:627 5c8:628 5c9:629 5ca:62a 5cb:62b 5cc:62c 5cd:62d 5ce:62e 5cf:62f 5d0:630 5d1:631
5d2:632 5d3:633 5d4:634 5d5:635 5d6:636 5d7:637 5d8:638 5d9:639 5da:63a 5e0:640 5e1:641 5e2:642
5e3:643 5e4:644 5e5:645 5e6:646 5e7:647 5e8:648 5e9:649 5ea:64a 5eb:64b 5ec:64c 5ed:64d 5ee:64e
5ef:64f 5f0:650 5f1:651 5f2:652 6a1:452 6a2:453 6a3:451 6a4:454 6a5:455 6a6:456 6a7:457 6a8:458
6a9:459 6aa:45a 6ab:45b 6ac:45c 6ad:491 6ae:45e 6af:45f 6b0:2116 6b1:402 6b2:403 6b3:401 6b4:404
6b5:405 6b6:406 6b7:407 6b8:408 6b9:409 6ba:40a 6bb:40b 6bc:40c 6bd:490 6be:40e 6bf:40f 6c0:44e
6c1:430 6c2:431 6c3:446 6c4:434 6c5:435 6c6:444 6c7:433 6c8:445 6c9:438 6ca:439 6cb:43a 6cc:43b
6cd:43c 6ce:43d 6cf:43e 6d0:43f 6d1:44f 6d2:440 6d3:441 6d4:442 6d5:443 6d6:436 6d7:432 6d8:44c
6d9:44b 6da:437 6db:448 6dc:44d 6dd:449 6de:447 6df:44a 6e0:42e 6e1:410 6e2:411 6e3:426 6e4:414
6e5:415 6e6:424 6e7:413 6e8:425 6e9:418 6ea:419 6eb:41a 6ec:41b 6ed:41c 6ee:41d 6ef:41e 6f0:41f
6f1:42f 6f2:420 6f3:421 6f4:422 6f5:423 6f6:416 6f7:412 6f8:42c 6f9:42b 6fa:417 6fb:428 6fc:42d
6fd:429 6fe:427 6ff:42a 7a1:386 7a2:388 7a3:389 7a4:38a 7a5:3aa 7a7:38c 7a8:38e 7a9:3ab 7ab:38f
7ae:385 7af:2015 7b1:3ac 7b2:3ad 7b3:3ae 7b4:3af 7b5:3ca 7b6:390 7b7:3cc 7b8:3cd 7b9:3cb 7ba:3b0
7bb:3ce 7c1:391 7c2:392 7c3:393 7c4:394 7c5:395 7c6:396 7c7:397 7c8:398 7c9:399 7ca:39a 7cb:39b
7cc:39c 7cd:39d 7ce:39e 7cf:39f 7d0:3a0 7d1:3a1 7d2:3a3 7d4:3a4 7d5:3a5 7d6:3a6 7d7:3a7 7d8:3a8
7d9:3a9 7e1:3b1 7e2:3b2 7e3:3b3 7e4:3b4 7e5:3b5 7e6:3b6 7e7:3b7 7e8:3b8 7e9:3b9 7ea:3ba 7eb:3bb
7ec:3bc 7ed:3bd 7ee:3be 7ef:3bf 7f0:3c0 7f1:3c1 7f2:3c3 7f3:3c2 7f4:3c4 7f5:3c5 7f6:3c6 7f7:3c7
7f8:3c8 7f9:3c9 8a1:23b7 8a2:250c 8a3:2500 8a4:2320 8a5:2321 8a6:2502 8a7:23a1 8a8:23a3 8a9:23a4
8aa:23a6 8ab:239b 8ac:239d 8ad:239e 8ae:23a0 8af:23a8 8b0:23ac 8bc:2264 8bd:2260 8be:2265 8bf:222b
8c0:2234 8c1:221d 8c2:221e 8c5:2207 8c8:223c 8c9:2243 8cd:21d4 8ce:21d2 8cf:2261 8d6:221a 8da:2282
8db:2283 8dc:2229 8dd:222a 8de:2227 8df:2228 8ef:2202 8f6:192 8fb:2190 8fc:2191 8fd:2192 8fe:2193
9e0:25c6 9e1:2592 9e2:2409 9e3:240c 9e4:240d 9e5:240a 9e8:2424 9e9:240b 9ea:2518 9eb:2510 9ed:2514
9ee:253c 9ef:23ba 9f0:23bb 9f2:23bc 9f3:23bd 9f4:251c 9f5:2524 9f6:2534 9f7:252c aa1:2003 aa2:2002
aa3:2004 aa4:2005 aa5:2007 aa6:2008 aa7:2009 aa8:200a aa9:2014 aaa:2013 aac:2423 aae:2026 aaf:2025
ab0:2153 ab1:2154 ab2:2155 ab3:2156 ab4:2157 ab5:2158 ab6:2159 ab7:215a ab8:2105 abb:2012 abc:27e8
abe:27e9 ac3:215b ac4:215c ac5:215d ac6:215e ac9:2122 aca:2613 acc:25c1 acd:25b7 ace:25cb acf:25af
ad0:2018 ad1:2019 ad2:201c ad3:201d ad4:211e ad5:2030 ad6:2032 ad7:2033 ad9:271d adb:25ac adc:25c0
add:25b6 ade:25cf adf:25ae ae0:25e6 ae1:25ab ae2:25ad ae3:25b3 ae4:25bd ae5:2606 ae6:2022 ae7:25aa
ae8:25b2 ae9:25bc aea:261c aeb:261e aec:2663 aed:2666 aee:2665 af0:2720 af1:2020 af2:2021 af3:2713
af4:2717 af5:266f af6:266d af7:2642 af8:2640 af9:260e afa:2315 afb:2117 afc:2038 afd:201a afe:201e
bc2:22a4 bc4:230a bca:2218 bcc:2395 bce:22a5 bd3:2308 bdc:22a3 bfc:22a2 cdf:2017 ce0:5d0 ce1:5d1
ce2:5d2 ce3:5d3 ce4:5d4 ce5:5d5 ce6:5d6 ce7:5d7 ce8:5d8 ce9:5d9 cea:5da ceb:5db cec:5dc ced:5dd
cee:5de cef:5df cf0:5e0 cf1:5e1 cf2:5e2 cf3:5e3 cf4:5e4 cf5:5e5 cf6:5e6 cf7:5e7 cf8:5e8 cf9:5e9
cfa:5ea da1:e01 da2:e02 da3:e03 da4:e04 da5:e05 da6:e06 da7:e07 da8:e08 da9:e09 daa:e0a dab:e0b
dac:e0c dad:e0d dae:e0e daf:e0f db0:e10 db1:e11 db2:e12 db3:e13 db4:e14 db5:e15 db6:e16 db7:e17
db8:e18 db9:e19 dba:e1a dbb:e1b dbc:e1c dbd:e1d dbe:e1e dbf:e1f dc0:e20 dc1:e21 dc2:e22 dc3:e23
dc4:e24 dc5:e25 dc6:e26 dc7:e27 dc8:e28 dc9:e29 dca:e2a dcb:e2b dcc:e2c dcd:e2d dce:e2e dcf:e2f
dd0:e30 dd1:e31 dd2:e32 dd3:e33 dd4:e34 dd5:e35 dd6:e36 dd7:e37 dd8:e38 dd9:e39 dda:e3a ddf:e3f
de0:e40 de1:e41 de2:e42 de3:e43 de4:e44 de5:e45 de6:e46 de7:e47 de8:e48 de9:e49 dea:e4a deb:e4b
dec:e4c ded:e4d df0:e50 df1:e51 df2:e52 df3:e53 df4:e54 df5:e55 df6:e56 df7:e57 df8:e58 df9:e59
eff:20a9 13bc:152 13bd:153 13be:178 20ac:20ac 10001d1:1d2 1002248:2245
"""
_LEGACY: Final = {int(keysym, 16): int(code, 16) for keysym, code in
                  (pair.split(":") for pair in _LEGACY_TABLE.split())}


def _printable(code_point: int) -> str | None:
    """The character of ``code_point`` if it is one a person types and reads (no control or surrogate)."""
    if code_point < 0x20 or 0x7F <= code_point < 0xA0 or 0xD800 <= code_point < 0xE000 \
            or code_point > _MAX_CODE_POINT:
        return None
    return chr(code_point)


def character(keysym: int) -> str | None:
    """The character a key press with ``keysym`` types, or None when it types none."""
    if 0x20 <= keysym <= 0xFF:
        return _printable(keysym)
    if keysym in _KEYPAD:
        return _KEYPAD[keysym]
    if keysym in _LEGACY:
        return _printable(_LEGACY[keysym])
    if _UNICODE_BASE <= keysym <= _UNICODE_BASE + _MAX_CODE_POINT:
        return _printable(keysym - _UNICODE_BASE)
    return None


def is_modifier(keysym: int) -> bool:
    """True for Shift, Ctrl, Alt and the other keys held while typing another."""
    return keysym in CHORD_MODIFIERS or keysym in _SILENT_MODIFIERS
