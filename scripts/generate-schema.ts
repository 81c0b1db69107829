import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FLEET_SCHEMA_FILE, fleetJsonSchemaText } from './fleet-json-schema.js';

// `npm run schema`: rewrites the committed JSON Schema; test/unit/schema-file.test.ts fails while it is stale.
const path = fileURLToPath(new URL(`../${FLEET_SCHEMA_FILE}`, import.meta.url));
writeFileSync(path, fleetJsonSchemaText());
console.log(`wrote ${FLEET_SCHEMA_FILE}`);
