// The CodeMirror 6 editors: the open file of the program (each file its own Y.Text) and the
// plain text boxes (stdin, a test's input and expected output), all bound to the room's Y.Doc
// with y-codemirror.next (shared edits, remote cursors, per-user undo).

import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from '@codemirror/autocomplete';
import { defaultKeymap, indentWithTab } from '@codemirror/commands';
import {
  HighlightStyle, bracketMatching, indentOnInput, indentUnit, syntaxHighlighting,
} from '@codemirror/language';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import { Compartment, EditorState, Prec, type Extension } from '@codemirror/state';
import {
  EditorView, crosshairCursor, drawSelection, dropCursor, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers, placeholder, rectangularSelection,
} from '@codemirror/view';
import { tags as t } from '@lezer/highlight';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';
import type { Awareness } from 'y-protocols/awareness';
import * as Y from 'yjs';
import type { Language } from './languages';

const theme = EditorView.theme({
  '&': { color: 'var(--text)', backgroundColor: 'transparent', height: '100%' },
  '&.cm-focused': { outline: 'none' },
  '.cm-scroller': { fontFamily: 'var(--mono)', fontSize: 'var(--code-size)', lineHeight: '1.6' },
  '.cm-content': { caretColor: 'var(--accent)', padding: '14px 0 40px' },
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--accent)', borderLeftWidth: '2px' },
  '&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, ::selection':
    { backgroundColor: '#2d4f7c99' },
  '.cm-gutters': { backgroundColor: 'var(--bg)', color: 'var(--faint)', border: 'none', paddingLeft: '8px' },
  '.cm-lineNumbers .cm-gutterElement': { padding: '0 14px 0 6px', minWidth: '28px' },
  '.cm-activeLine': { backgroundColor: '#ffffff07' },
  '.cm-activeLineGutter': { backgroundColor: 'transparent', color: 'var(--muted)' },
  '.cm-matchingBracket': { backgroundColor: '#ffffff1a', outline: '1px solid #ffffff30' },
  '.cm-selectionMatch': { backgroundColor: '#ffffff12' },
  '.cm-searchMatch': { backgroundColor: '#e2b93d40', outline: '1px solid #e2b93d80' },
  '.cm-panels': { backgroundColor: 'var(--panel-2)', color: 'var(--text)', borderColor: 'var(--border)' },
  '.cm-panels input, .cm-panels button': { font: 'inherit', fontSize: '12px' },
  '.cm-placeholder': { color: 'var(--faint)' },
  '.cm-tooltip': { backgroundColor: 'var(--panel-2)', border: '1px solid var(--border)', borderRadius: '6px' },
  '.cm-tooltip-autocomplete > ul > li[aria-selected]': { backgroundColor: 'var(--accent-soft)', color: 'var(--text)' },
  // Remote cursors (y-codemirror.next): the name stays visible above the caret.
  '.cm-ySelectionCaret': { borderLeftWidth: '2px', borderRightWidth: '0', marginLeft: '-1px', marginRight: '-1px' },
  '.cm-ySelectionCaretDot': { display: 'none' },
  '.cm-ySelectionInfo': {
    opacity: '1', top: '-1.45em', left: '-2px', fontFamily: 'var(--sans)', fontSize: '10.5px', fontWeight: '600',
    lineHeight: '1.45', padding: '0 5px', borderRadius: '4px 4px 4px 0', color: '#fff', letterSpacing: '.01em',
  },
  '.cm-ySelectionCaret:hover > .cm-ySelectionInfo': { opacity: '1' },
}, { dark: true });

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.moduleKeyword, t.operatorKeyword, t.definitionKeyword, t.modifier], color: '#c792ea' },
  { tag: [t.string, t.special(t.string), t.character], color: '#a5d6a0' },
  { tag: [t.regexp, t.escape], color: '#e6a26e' },
  { tag: [t.number, t.bool, t.null, t.atom], color: '#f2a66b' },
  { tag: [t.comment, t.lineComment, t.blockComment, t.docComment], color: '#6c7689', fontStyle: 'italic' },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.macroName], color: '#7cb7ff' },
  { tag: [t.definition(t.variableName), t.definition(t.function(t.variableName))], color: '#8fc8ff' },
  { tag: [t.typeName, t.className, t.namespace, t.standard(t.typeName)], color: '#f0c674' },
  { tag: [t.propertyName, t.attributeName], color: '#9cdcfe' },
  { tag: [t.operator, t.punctuation, t.derefOperator], color: '#a9b3c4' },
  { tag: [t.meta, t.processingInstruction, t.annotation], color: '#d7a4ff' },
  { tag: [t.self, t.labelName], color: '#ff9ab3' },
  { tag: t.invalid, color: '#ff6b6b' },
]);

const base: Extension = [
  highlightSpecialChars(),
  drawSelection(),
  dropCursor(),
  EditorState.allowMultipleSelections.of(true),
  syntaxHighlighting(highlight),
  theme,
];

/** Ctrl/Cmd-Enter runs, from any editor (above every other keymap). */
const runKey = (onRun: () => void) => Prec.highest(keymap.of([{ key: 'Mod-Enter', run: () => { onRun(); return true; }, preventDefault: true }]));

export interface TextEditor {
  view: EditorView;
  destroy(): void;
}

export interface CodeEditor extends TextEditor {
  setMode(mode: Extension): void;
}

/** What a viewer's editors get: the text follows the room, but no keystroke changes it (undo
 * included: it writes to the Y.Text directly). The caret and selection stay, to copy from. */
const readOnly: Extension = [EditorState.readOnly.of(true), EditorView.contentAttributes.of({ 'aria-readonly': 'true' })];

/** The editor of the program's file `path` (its text `ytext`), with `language`'s indentation;
 * the mode is set when loaded. `undoManager`: the file's own, which outlives the editor (so a
 * file's undo history survives switching tabs); null for a viewer's editor (see `readOnly`). */
export function createCodeEditor(parent: HTMLElement, ytext: Y.Text, awareness: Awareness, path: string, language: Language, onRun: () => void, undoManager: Y.UndoManager | null): CodeEditor {
  const mode = new Compartment();
  const editable = undoManager !== null;
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        base,
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightActiveLine(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        autocompletion({ activateOnTyping: false }),
        rectangularSelection(),
        crosshairCursor(),
        highlightSelectionMatches(),
        indentUnit.of(language.indent),
        EditorState.tabSize.of(4),
        mode.of([]),
        runKey(onRun),
        editable
          ? keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...completionKeymap, ...yUndoManagerKeymap, indentWithTab])
          : [keymap.of([...defaultKeymap, ...searchKeymap]), readOnly],
        yCollab(ytext, awareness, { undoManager: undoManager ?? false }),
        EditorView.contentAttributes.of({ 'aria-label': `${path}, a file of the program`, 'data-testid': 'code' }),
      ],
    }),
  });
  return {
    view,
    setMode: (ext) => view.dispatch({ effects: mode.reconfigure(ext) }),
    destroy: () => view.destroy(),
  };
}

/** What a plain text box says: its accessible name, its placeholder (and a viewer's), its test id. */
export interface TextBox {
  label: string;
  placeholder: string;
  empty: string;
  testid: string;
}

/** A plain text box (stdin, a test's texts), shared like the program (read-only for a viewer). */
export function createTextEditor(parent: HTMLElement, ytext: Y.Text, awareness: Awareness, onRun: () => void, editable: boolean, box: TextBox): TextEditor {
  const undoManager = editable ? new Y.UndoManager(ytext) : null;
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        base,
        EditorView.lineWrapping,
        placeholder(editable ? box.placeholder : box.empty),
        runKey(onRun),
        editable ? keymap.of([...defaultKeymap, ...yUndoManagerKeymap]) : [keymap.of(defaultKeymap), readOnly],
        yCollab(ytext, awareness, { undoManager: undoManager ?? false }),
        EditorView.contentAttributes.of({ 'aria-label': box.label, 'data-testid': box.testid }),
      ],
    }),
  });
  return {
    view,
    destroy: () => {
      view.destroy();
      undoManager?.destroy();
    },
  };
}
