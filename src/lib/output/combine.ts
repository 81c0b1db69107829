import type { Renderer } from './types.js';

/**
 * One renderer that hands every event to each given renderer, in order. `undefined` entries are skipped,
 * so an optional renderer (the GitHub Actions reporter outside Actions) can be passed as it comes.
 */
export function combineRenderers(...renderers: (Renderer | undefined)[]): Renderer {
  const present = renderers.filter((r): r is Renderer => r !== undefined);
  if (present.length === 1) return present[0];
  return {
    // Every renderer sees every event even when one of them throws (the journal on a full disk); the
    // first error is passed on afterwards.
    handle(event) {
      let failure: Error | undefined;
      for (const renderer of present) {
        try {
          renderer.handle(event);
        } catch (error) {
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }
      if (failure !== undefined) throw failure;
    },
    async finish() {
      await Promise.all(present.map((renderer) => renderer.finish()));
    },
  };
}
