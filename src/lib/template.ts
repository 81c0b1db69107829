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
