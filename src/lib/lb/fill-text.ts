import { fail, OK, type Outcome } from '../outcome.js';
import { missingValues, type TemplateValues } from '../template.js';

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_.]*)\}/g;

/**
 * Fills a template with the values as they are. Only for text that is compared or sent as data (an
 * upstream address, a target id, a JSON string): commands go through fillShell, URLs through fillUrl.
 * A placeholder without a value is left as written, so describe() shows what is missing.
 */
export function fillText(template: string, values: TemplateValues): string {
  return template.replace(PLACEHOLDER, (whole, key: string) =>
    values[key] === undefined ? whole : String(values[key]),
  );
}

/** Fails naming the placeholders of `template` that have no value for this node. */
export function requireValues(template: string, values: TemplateValues, what: string): Outcome {
  const missing = missingValues(template, values);
  return missing.length === 0
    ? OK
    : fail(`${what} ${JSON.stringify(template)}: ${missing.map((k) => `{${k}}`).join(', ')} has no value`);
}

/**
 * Runs tasks one at a time, in call order. Editing a load balancer's config is read-modify-write: two nodes
 * of one batch deregistering at once would otherwise each write back a copy without the other's change.
 */
export function oneAtATime(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}
