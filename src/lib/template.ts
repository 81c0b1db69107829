import type { FleetNode } from './config/types.js';
import { shellQuote } from './transport/quote.js';

export type TemplateValues = Record<string, string | number | undefined>;

/** The values a node offers to templates: {node}, {host}, {port}, {lbServer}, {vars.NAME}. */
export function nodeValues(node: FleetNode, extra: TemplateValues = {}): TemplateValues {
  const values: TemplateValues = {
    node: node.name,
    host: node.host,
    port: node.port,
    lbServer: node.lbServer,
    ...extra,
  };
  for (const [key, value] of Object.entries(node.vars)) values[`vars.${key}`] = value;
  return values;
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_.]*)\}/g;

/** Placeholders a template uses that have no value. */
export function missingValues(template: string, values: TemplateValues): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]).filter((key) => values[key] === undefined);
}

/** Fills a shell-command template: every value is shell-quoted, so it is one word whatever it holds. */
export function fillShell(template: string, values: TemplateValues): string {
  return template.replace(PLACEHOLDER, (whole, key: string) =>
    values[key] === undefined ? whole : shellQuote(String(values[key])),
  );
}

/** Fills a URL template: values are percent-encoded where they could change the URL's structure. */
export function fillUrl(template: string, values: TemplateValues): string {
  return template.replace(PLACEHOLDER, (whole, key: string) => {
    const value = values[key];
    if (value === undefined) return whole;
    const text = String(value);
    return /^[A-Za-z0-9.:_-]+$/.test(text) ? text : encodeURIComponent(text);
  });
}

export interface QuotedPlaceholder {
  placeholder: string;
  quote: "'" | '"';
}

/**
 * Placeholders that stand inside quotes the operator wrote: `echo "{vars.x}"`. fillShell quotes every
 * value itself, and quotes around that (POSIX.1-2017 XCU 2.2: inside "…" a `'` is literal and `$(…)`
 * still expands; inside '…' the value's own quotes close and reopen them) would let a value such as
 * `$(reboot)` run. Such templates are refused at load. Tracks the shell's quoting state: '…', "…",
 * $'…' (bash), backslash escapes, and # comments.
 */
export function quotedPlaceholders(template: string): QuotedPlaceholder[] {
  const found: QuotedPlaceholder[] = [];
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
    } else if (c === '\\') {
      i += 1; // the next character is literal (inside "…" too, for the ones that matter here)
      continue;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
      continue;
    } else if (c === '#' && (i === 0 || /\s/.test(template[i - 1]))) {
      const end = template.indexOf('\n', i);
      if (end < 0) break;
      i = end;
      continue;
    }
    if (quote && c === '{') {
      const match = /^\{([A-Za-z_][A-Za-z0-9_.]*)\}/.exec(template.slice(i));
      if (match) {
        found.push({ placeholder: match[0], quote });
        i += match[0].length - 1;
      }
    }
  }
  return found;
}
