# jugend's vacation reply: one answer per sender a week, the message itself stays in the INBOX
require ["vacation"];

vacation
  :days 7
  :addresses ["jugend@club.test", "trainer@club.test"]
  :subject "Abwesend: Jugendabteilung in den Herbstferien"
  "Hallo,

ich bin bis zum Ende der Herbstferien nicht erreichbar. In dringenden Fällen
schreibt bitte an vorstand@club.test.

Sportliche Grüße
Jugendabteilung FC Lab";
