import type { ServiceConfig } from '../config/types.js';
import { createCommandManager } from './command.js';
import { createSystemdManager } from './systemd.js';
import type { ServiceManager } from './types.js';

export function createServiceManager(config: ServiceConfig): ServiceManager {
  switch (config.type) {
    case 'systemd':
      return createSystemdManager(config);
    case 'command':
      return createCommandManager(config);
  }
}
