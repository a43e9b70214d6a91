// Sign a sync-status request with the official Node.js SDK (wechatpay-axios-plugin), send it to
// the sandbox, and let the SDK verify the sandbox's signed 204 with the key `keyId`: the WeChat
// Pay public key, or (given `keyFile`) a platform certificate the SDK's downloader saved.
const { Wechatpay } = require('wechatpay-axios-plugin');
const fs = require('fs');
const [baseURL, keysDir, mchid, serial, keyId, keyFile] = process.argv.slice(2);
const wxpay = new Wechatpay({
  mchid,
  serial,
  privateKey: fs.readFileSync(`${keysDir}/apiclient_key.pem`),
  certs: { [keyId]: fs.readFileSync(keyFile || `${keysDir}/wechatpay_pub_key.pem`) },
  baseURL,
});
const body = JSON.parse(fs.readFileSync(0, 'utf8'));
wxpay.v3.catering.orders['sync-status']
  .post(body)
  .then((r) => console.log(JSON.stringify({ status: r.status, verified: true })))
  .catch((e) => {
    console.log(JSON.stringify({ status: e.response && e.response.status, error: e.message, data: e.response && e.response.data }));
    process.exit(1);
  });
