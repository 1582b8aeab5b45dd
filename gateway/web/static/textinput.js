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

const TEXT = {
  label: "Type here: text from your input method is sent to the desktop",
};

// TigerVNC's Xvnc maps a keysym that has no key to a spare keycode, re-used for the next such
// keysym; an X client that reads the keymap late would see the next character's mapping. So
// composed characters go out this far apart (ms), and keys pressed meanwhile wait their turn.
const CHARACTER_PACE_MS = 60;
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

const pending = [];  // what waits to be sent, in order: [keysym, null] or [null, a key event to replay]
let sending = false;

async function sendPending(rfb, canvas) {
  sending = true;
  while (pending.length > 0) {
    const [keysym, keyEvent] = pending.shift();
    if (keyEvent !== null) {
      canvas.dispatchEvent(keyEvent);
      continue;
    }
    rfb.sendKey(keysym, null, true);
    rfb.sendKey(keysym, null, false);
    await new Promise((resolve) => setTimeout(resolve, CHARACTER_PACE_MS));
  }
  sending = false;
}

/** Send ``text`` to the desktop, one press and release per character, in order with the keys pressed. */
export function typeText(rfb, canvas, text) {
  for (const character of text.replace(/\r\n/g, "\n")) {
    const keysym = keysymFor(character);
    if (keysym !== null) pending.push([keysym, null]);
  }
  if (!sending && pending.length > 0) sendPending(rfb, canvas);
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
      const replay = new KeyboardEvent(type, {
        key: event.key, code: event.code, location: event.location, repeat: event.repeat,
        ctrlKey: event.ctrlKey, altKey: event.altKey, shiftKey: event.shiftKey, metaKey: event.metaKey,
        modifierCapsLock: event.getModifierState("CapsLock"), modifierNumLock: event.getModifierState("NumLock"),
        modifierAltGraph: event.getModifierState("AltGraph"), bubbles: true, cancelable: true,
      });
      if (sending) {
        pending.push([null, replay]);  // after the composed text still on its way
      } else {
        canvas.dispatchEvent(replay);
      }
    });
  }

  box.addEventListener("compositionend", (event) => {
    typeText(rfb, canvas, event.data || "");
    box.value = "";
  });
  box.addEventListener("input", (event) => {
    if (event.isComposing || COMPOSITION_INPUT.has(event.inputType)) return;
    if (event.inputType === "insertText" || event.inputType === "insertReplacementText") {
      typeText(rfb, canvas, event.data ?? box.value);
    }
    box.value = "";  // a paste or a deletion in the box types nothing
  });
  return box;
}
