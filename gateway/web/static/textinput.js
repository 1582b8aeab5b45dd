// Text the operator's input method composes (Japanese kana-kanji conversion, dictation,
// pasting from an on-screen keyboard) has no key to send: it arrives as composition and
// `input` events on an editable element. This module keeps a hidden text box focused while
// the desktop has focus and sends each character of that text as its keysym, a press and a
// release: Latin-1 as itself, any other character as 0x01000000 + its code point (as noVNC
// and Guacamole's text input do).
//
// No double typing: every ordinary key press still goes to noVNC's own keyboard handler
// (re-dispatched to its canvas) and is cancelled in the text box, so it never becomes text
// there. Only keys the input method takes (keyCode 229, isComposing) are left to it; their
// result comes back once, at `compositionend` (or as an `input` of type insertText, as
// Playwright's keyboard.insertText and some virtual keyboards produce). A paste into the box
// (insertFromPaste) is the clipboard's business (clipboard.js), not typing.

import { t } from "/static/i18n.js";

const TEXT = {
  label: t("Type here: text from your input method is sent to the desktop"),
};

const KEYSYM_RETURN = 0xff0d;
const KEYSYM_TAB = 0xff09;
const UNICODE_KEYSYM_BASE = 0x01000000;
// Composition results are sent once, at compositionend; these input types only show the composition.
const COMPOSITION_INPUT = new Set(["insertCompositionText", "insertFromComposition", "deleteCompositionText"]);

/** The keysym that types ``character`` (one code point), or null for a control character. */
export function keysymFor(character) {
  const codePoint = character.codePointAt(0);
  if (character === "\n" || character === "\r") return KEYSYM_RETURN;
  if (character === "\t") return KEYSYM_TAB;
  if (codePoint < 0x20 || (codePoint >= 0x7f && codePoint < 0xa0)) return null;
  return codePoint < 0x100 ? codePoint : UNICODE_KEYSYM_BASE + codePoint;
}

// Xvnc (TigerVNC 1.12) loses a keysym it added for the very first key event of its keyboard
// (the core keyboard then takes the device's keymap): the first character typed would come out
// as the second. A Control press and release before the page's first composed text avoids that
// (Control alone, unlike Shift, switches no input method's mode and opens no menu).
const KEYSYM_CONTROL_L = 0xffe3;
let primed = false;

function pressAndRelease(rfb, keysym) {
  rfb.sendKey(keysym, null, true);
  rfb.sendKey(keysym, null, false);
}

/** Send ``text`` to the desktop, one press and release per character. */
export function typeText(rfb, text) {
  if (!primed) {
    primed = true;
    pressAndRelease(rfb, KEYSYM_CONTROL_L);
  }
  for (const character of text.replace(/\r\n/g, "\n")) {
    const keysym = keysymFor(character);
    if (keysym !== null) pressAndRelease(rfb, keysym);
  }
}

/** Give the desktop in ``screen`` (noVNC's ``rfb`` draws in it) a text box for composed text. */
export function attachTextInput(rfb, screen) {
  const canvas = screen.querySelector("canvas");
  const box = document.createElement("textarea");
  box.className = "text-input";
  box.id = "text-input";
  box.setAttribute("aria-label", TEXT.label);
  for (const [name, value] of [["autocomplete", "off"], ["autocorrect", "off"], ["autocapitalize", "off"],
    ["spellcheck", "false"]]) {
    box.setAttribute(name, value);
  }
  screen.appendChild(box);

  // Whenever noVNC focuses its canvas (on connect, on a click), the text box takes the focus.
  canvas.addEventListener("focus", () => box.focus({ preventScroll: true }));
  // Releasing the box releases the keys noVNC holds down, as leaving its canvas would.
  box.addEventListener("blur", () => canvas.dispatchEvent(new FocusEvent("blur")));

  for (const type of ["keydown", "keyup"]) {
    box.addEventListener(type, (event) => {
      if (event.isComposing || event.keyCode === 229) return;  // the input method's: its text comes later
      event.preventDefault();  // never text in the box: noVNC sends the key
      canvas.dispatchEvent(new KeyboardEvent(type, {
        key: event.key, code: event.code, location: event.location, repeat: event.repeat,
        ctrlKey: event.ctrlKey, altKey: event.altKey, shiftKey: event.shiftKey, metaKey: event.metaKey,
        modifierCapsLock: event.getModifierState("CapsLock"), modifierNumLock: event.getModifierState("NumLock"),
        modifierAltGraph: event.getModifierState("AltGraph"), bubbles: true, cancelable: true,
      }));
    });
  }

  box.addEventListener("compositionend", (event) => {
    typeText(rfb, event.data || "");
    box.value = "";
  });
  box.addEventListener("input", (event) => {
    if (event.isComposing || COMPOSITION_INPUT.has(event.inputType)) return;
    if (event.inputType === "insertText" || event.inputType === "insertReplacementText") {
      typeText(rfb, event.data ?? box.value);
    }
    box.value = "";  // a paste or a deletion in the box types nothing
  });
  return box;
}
