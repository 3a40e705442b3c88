# kasse's filter: invoices and reminders go to their own folder
require ["fileinto", "mailbox"];

if anyof (header :contains "subject" ["Rechnung", "Mahnung"],
          address :domain :is "from" "bank.example") {
  fileinto :create "Rechnungen";
  stop;
}
