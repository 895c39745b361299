// Validates HAR files against the HAR 1.2 JSON schema with the npm package har-validator
// (version 5 is a library only; its command moved to har-cli). Used by the Rust integration
// tests: node validate-har.js FILE... ; exits 1 when any file is rejected, after printing
// every schema error of every file (dataPath and message).
'use strict';
const fs = require('fs');
const validator = require('har-validator');

async function main(files) {
  let rejected = 0;
  for (const file of files) {
    let data;
    try {
      data = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      rejected++;
      console.log(`${file}: not JSON: ${e.message}`);
      continue;
    }
    try {
      await validator.har(data);
    } catch (e) {
      rejected++;
      const errors = e.errors || [{ dataPath: '', message: String(e) }];
      for (const err of errors) {
        console.log(`${file}: ${err.dataPath || '(root)'}: ${err.message}`);
      }
    }
  }
  return rejected;
}

if (process.argv.length < 3) {
  console.error('usage: node validate-har.js FILE...');
  process.exit(2);
}
main(process.argv.slice(2)).then(
  (rejected) => process.exit(rejected ? 1 : 0),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
