CREATE DATABASE IF NOT EXISTS mitglieder CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE mitglieder;
CREATE TABLE mitglieder (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  eingetreten DATE NOT NULL DEFAULT (CURRENT_DATE)
);
INSERT INTO mitglieder (name, eingetreten) VALUES
  ('Anna Berger', '1998-03-01'), ('Bernd Cordes', '2004-07-15'), ('Carla Dietz', '2011-01-10'),
  ('Deniz Ekinci', '2019-09-01'), ('Eva Fuchs', '2023-02-20');
CREATE TABLE cron_runs (
  id INT PRIMARY KEY AUTO_INCREMENT,
  ran_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  members INT NOT NULL
);
