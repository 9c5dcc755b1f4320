/** The panel's CSS, inside its shadow root (nothing leaks either way). */
export const STYLES = `
:host { all: initial; }
:host([hidden]) { display: none; }
.panel { position: fixed; right: 8px; bottom: 8px; width: min(560px, 96vw); max-height: 70vh; overflow: auto;
  z-index: 2147483647; background: #11151c; color: #dde3ea; font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace;
  border: 1px solid #2d3642; border-radius: 6px; box-shadow: 0 6px 24px rgba(0,0,0,.35); }
header { position: sticky; top: 0; display: flex; justify-content: space-between; align-items: center;
  padding: 6px 10px; background: #1a2029; border-bottom: 1px solid #2d3642; }
.body { padding: 4px 10px 10px; }
h2 { font-size: 12px; margin: 10px 0 4px; color: #8fb8ff; text-transform: uppercase; letter-spacing: .04em; }
h3 { font-size: 12px; margin: 8px 0 2px; color: #c6d0db; }
button { font: inherit; color: #dde3ea; background: #243040; border: 1px solid #3a4757; border-radius: 4px; padding: 1px 6px; cursor: pointer; }
button.chosen { background: #2f5d9e; }
.close { font-size: 14px; }
.muted { color: #8893a0; }
.doc { border-top: 1px solid #232b36; padding: 4px 0; }
details { margin-left: 12px; }
summary { cursor: pointer; margin-left: -12px; }
.leaf { margin-left: 12px; word-break: break-all; }
.key { color: #f0b86e; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 1px 6px 1px 0; vertical-align: top; }
th { color: #8893a0; font-weight: normal; }
ol.history { padding-left: 22px; margin: 2px 0; max-height: 160px; overflow: auto; }
ul { padding-left: 18px; margin: 2px 0; }
.buttons { display: flex; gap: 6px; margin-bottom: 4px; }
table.log td { white-space: nowrap; }
`;
