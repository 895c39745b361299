#!/usr/bin/env node
// Validates HAR files against the HAR 1.2 schema with the npm package har-validator.
// Usage: node tools/har-validate.js FILE...   Exit status: 0 all valid, 1 some invalid, 2 no validator.
'use strict';
const fs = require('fs');
const path = require('path');
const { execSync } = require('child_process');

function load() {
  try {
    return require('har-validator');
  } catch (_) {
    const root = execSync('npm root -g', { encoding: 'utf8' }).trim();
    return require(path.join(root, 'har-validator'));
  }
}

let validator;
try {
  validator = load();
} catch (e) {
  console.error('har-validator is not installed (npm install -g har-validator)');
  process.exit(2);
}

(async () => {
  let bad = 0;
  for (const file of process.argv.slice(2)) {
    try {
      await validator.har(JSON.parse(fs.readFileSync(file, 'utf8')));
    } catch (e) {
      bad++;
      const errors = (e.errors || [{ message: String(e) }]).slice(0, 10);
      for (const err of errors) {
        console.error(`${file}: ${err.dataPath || err.instancePath || ''} ${err.message}`);
      }
    }
  }
  process.exit(bad ? 1 : 0);
})();
