// Uploads a file with tus-js-client, as a browser app would, in 1 MiB chunks.
// Usage: node resume.cjs <endpoint> <file> <token> <url-storage-file> [abort-after-bytes]
// With abort-after-bytes it stops once that much is acknowledged (the tab is closed); a later
// run finds the unfinished upload through findPreviousUploads() and resumes it.
const fs = require("fs");
const tus = require("tus-js-client");

const [, , endpoint, file, token, storagePath, abortAfter] = process.argv;
const data = fs.readFileSync(file);
const limit = abortAfter ? Number(abortAfter) : 0;

const upload = new tus.Upload(data, {
  endpoint,
  chunkSize: 1024 * 1024,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: "from-js.bin", dir: "js" },
  urlStorage: new tus.FileUrlStorage(storagePath),
  fingerprint: async () => `fixed:${file}`,
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: true,
  retryDelays: null,
  onChunkComplete: (_size, accepted) => {
    if (limit && accepted >= limit) {
      upload.abort().then(() => {
        console.log(`aborted at ${accepted}`);
        process.exit(0);
      });
    }
  },
  onSuccess: () => {
    console.log("done");
    process.exit(0);
  },
  onError: (error) => {
    console.error(`error: ${error}`);
    process.exit(1);
  },
});

upload.findPreviousUploads().then((previous) => {
  if (previous.length > 0) {
    console.log(`resuming ${previous[0].uploadUrl}`);
    upload.resumeFromPreviousUpload(previous[0]);
  }
  upload.start();
});
