import type { Renderer } from './types.js';

/**
 * One renderer that hands every event to each given renderer, in order. `undefined` entries are skipped,
 * so an optional renderer (the GitHub Actions reporter outside Actions) can be passed as it comes.
 */
export function combineRenderers(...renderers: (Renderer | undefined)[]): Renderer {
  const present = renderers.filter((r): r is Renderer => r !== undefined);
  if (present.length === 1) return present[0];
  return {
    handle(event) {
      for (const renderer of present) renderer.handle(event);
    },
    async finish() {
      await Promise.all(present.map((renderer) => renderer.finish()));
    },
  };
}
